"""Single-task baselines: cache keys, reuse, equivalence with separate runs, and the report."""

from __future__ import annotations

import json

import pytest

from mtlrun.results.baseline_cache import baseline_key, baseline_settings
from tests.conftest import TINY

SMALL = ["encoder=mlp", "encoder.hidden=[32]", "trainer.batch_size=128", "diagnostics.every=0"]


def key(**changes):
    base = dict(
        dataset={"name": "multi_digits", "seed": 0},
        task="left",
        primary="accuracy",
        encoder={"name": "cnn", "channels": [16, 32]},
        trainer={"lr": 0.001, "epochs": 2, "device": "cpu"},
        seed=0,
    )
    base.update(changes)
    return baseline_key(baseline_settings(**base))


def test_cache_key_tracks_exactly_the_defining_settings():
    reference = key()
    assert key(encoder={"name": "mlp", "hidden": [64]}) != reference
    assert key(trainer={"lr": 0.01, "epochs": 2, "device": "cpu"}) != reference
    assert key(seed=1) != reference and key(task="right") != reference
    assert key(dataset={"name": "multi_digits", "seed": 1}) != reference
    # not part of a baseline's identity: where it runs (and the run's arch or balancer, which are never passed)
    assert key(trainer={"lr": 0.001, "epochs": 2, "device": "cuda"}) == reference


def test_second_run_reuses_baselines_and_arch_does_not_change_them(cli, tmp_path):
    first = cli(*TINY, *SMALL, "tasks=digits_left_right")
    assert first.code == 0, first.err
    folder = first.run_dirs()[-1]
    assert "training single-task baselines" in (folder / "run.log").read_text()
    cached = sorted((tmp_path / "outputs" / "baselines").glob("*.json"))
    assert len(cached) == 2
    second = cli(*TINY, *SMALL, "tasks=digits_left_right", "balancer=fixed", "tasks.weights={left:2}")
    log = (second.run_dirs()[-1] / "run.log").read_text()
    assert "training single-task baselines" not in log and "reusing cached single-task baselines" in log
    assert sorted((tmp_path / "outputs" / "baselines").glob("*.json")) == cached
    report = json.loads((second.run_dirs()[-1] / "transfer.json").read_text())
    assert set(report["tasks"]) == {"left", "right"}
    assert report["tasks"]["left"]["verdict"] == "untested (1 seed)"
    assert (second.run_dirs()[-1] / "report.md").read_text().startswith("# Negative-transfer report")
    assert "Negative transfer vs single-task baselines" in second.out


@pytest.mark.parametrize("batched", ["separate", "grouped"])
def test_baselines_trained_together_equal_separate_single_task_runs(cli, tmp_path, batched):
    together = cli(*TINY, *SMALL, "tasks=digits_left_right", f"report.batched={batched}")
    assert together.code == 0, together.err
    records = {
        r["task"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "outputs" / "baselines").glob("*.json"))
    }
    assert records["left"]["trained_with"]["layout"] == batched
    alone_dir = tmp_path / "alone"
    alone_dir.mkdir()
    alone = cli(*TINY, *SMALL, "arch=single_task", "tasks.names=[right]", "report.baselines=false", cwd=alone_dir)
    summary = alone.summary()
    expected = summary["metrics"]["best"]["test"]["right"]
    got = records["right"]["metrics"]["best"]["test"]
    assert summary["metrics"]["best"]["epoch"] == records["right"]["metrics"]["best"]["epoch"]
    for metric, value in expected.items():
        assert got[metric] == pytest.approx(value, abs=1e-6 if batched == "separate" else 2e-2), metric


def test_report_baselines_false_and_only_cached(cli, tmp_path):
    off = cli(*TINY, *SMALL, "tasks=digits_left_right", "report.baselines=false")
    assert off.code == 0 and not (off.run_dirs()[-1] / "transfer.json").exists()
    cached = cli(*TINY, *SMALL, "tasks=digits_left_right", "report.baselines=only_cached")
    assert cached.code == 0, cached.err
    assert not (cached.run_dirs()[-1] / "transfer.json").exists()
    assert not (tmp_path / "outputs" / "baselines").exists()
    log = (cached.run_dirs()[-1] / "run.log").read_text()
    said = [line for line in log.splitlines() if "no report was written" in line]
    assert len(said) == 1 and "WARNING" in said[0], log
    assert "mtlrun trainer.epochs=2" in said[0] and said[0].rstrip().endswith("report.baselines=true")
    assert "report.baselines=only_cached" not in said[0].split("with: ")[1]


def test_single_runs_pool_seeds_on_request_with_p_values(cli):
    """Separate single runs pool only with ``report.pool=folder`` (the default pools a run's own sweep)."""
    for seed in (0, 1):
        result = cli(*TINY, *SMALL, "tasks=digits_left_right", f"seed={seed}", "report.min_seeds=2")
        assert result.code == 0, result.err
    assert json.loads((result.run_dirs()[-1] / "transfer.json").read_text())["seeds"] == [1]
    again = cli(*TINY, *SMALL, "tasks=digits_left_right", "seed=1", "report.min_seeds=2", "report.pool=folder")
    report = json.loads((again.run_dirs()[-1] / "transfer.json").read_text())
    assert report["seeds"] == [0, 1] and len(report["pool"]["dropped"]) == 1  # the earlier seed-1 run
    for task in ("left", "right"):
        entry = report["tasks"][task]
        assert entry["n_mtl"] == 2 and entry["n_stl"] == 2 and entry["p_value"] is not None
        assert entry["p_adjusted"] >= entry["p_value"] and entry["ci95"] is not None
        assert entry["verdict"] in ("negative transfer", "positive transfer", "no significant difference")


def _sweep_report(cli, tmp_path, correlation: float) -> dict:
    """hps on linear synthetic tasks with a one-unit shared layer, seeds 0-2, pooled at the sweep end.

    With correlation 0 the two tasks need orthogonal directions and one shared unit holds only one:
    one task must lose against its single-task baseline (which has its own unit). With correlation 1
    both tasks need the same direction, so sharing costs nothing.
    """
    where = tmp_path / f"c{correlation}"
    where.mkdir()
    result = cli(
        "-m",
        "dataset=synthetic",
        f"dataset.correlation={correlation}",
        "dataset.num_samples=2000",
        "dataset.input_dim=8",
        "dataset.num_sinusoids=0",
        "encoder=mlp",
        "encoder.hidden=[1]",
        "trainer.epochs=15",
        "trainer.lr=0.01",
        "diagnostics.every=0",
        "seed=0,1,2",
        cwd=where,
    )
    assert result.code == 0, result.err
    reports = [json.loads(p.read_text()) for p in sorted(where.glob("multirun/*/*/*/transfer.json"))]
    assert len(reports) == 3 and all(r["seeds"] == [0, 1, 2] for r in reports)  # every job pools all seeds
    return reports[0]


@pytest.mark.slow
def test_uncorrelated_tasks_with_small_capacity_show_negative_transfer(cli, tmp_path):
    report = _sweep_report(cli, tmp_path, 0.0)
    verdicts = [v["verdict"] for v in report["tasks"].values()]
    assert "negative transfer" in verdicts
    assert all(v["p_value"] is not None for v in report["tasks"].values())


@pytest.mark.slow
def test_identical_tasks_show_no_negative_transfer(cli, tmp_path):
    report = _sweep_report(cli, tmp_path, 1.0)
    assert all(v["verdict"] != "negative transfer" for v in report["tasks"].values())


def test_only_the_missing_baselines_are_trained(cli):
    first = cli(*TINY, *SMALL, "tasks.names=[left]")
    assert first.code == 0, first.err
    second = cli(*TINY, *SMALL, "tasks=digits_left_right")
    assert second.code == 0, second.err
    log = (second.run_dirs()[-1] / "run.log").read_text()
    assert "reusing cached single-task baselines for left" in log
    assert "training single-task baselines for right together" in log

"""Dense benchmarks through the real entry point, on fake NYUv2 and Cityscapes folders (tiny SegNet)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import run_subprocess
from tests.data.dense_fixtures import write_cityscapes, write_nyuv2

TINY_SEGNET = ["encoder=segnet", "encoder.channels=[4,8]", "encoder.convs=[1,1]"]
FAST = ["trainer.epochs=1", "trainer.batch_size=4", "diagnostics.every=0", "dataset.verify=false"]
NYU_METRICS = {
    "segmentation": {"miou", "pix_acc"},
    "depth": {"abs_err", "rel_err"},
    "normal": {"mean", "median", "within_11_25", "within_22_5", "within_30"},
}
ARCHS = {
    "hps": [],
    "single_task": [],
    "cross_stitch": [],
    "mtan": [],
    "soft_sharing": [],
    "mmoe": ["arch.num_experts=2"],
    "cgc": [],
    "ple": [],
    "branched": ["arch.branch_at={segmentation: 1}"],
    "dselect_k": ["arch.num_experts=2", "arch.k=1"],
}


@pytest.fixture(scope="module")
def nyu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nyuv2(tmp_path_factory.mktemp("data") / "nyuv2", n_train=4, n_val=2)


@pytest.fixture
def no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plots are tested elsewhere; drawing them would dominate these runs."""
    import mtlrun.report.plots

    monkeypatch.setattr(mtlrun.report.plots, "plot_run", lambda folder: None)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_trains_on_nyuv2(cli, nyu: Path, no_plots, arch: str):
    result = cli(
        "dataset=nyuv2", f"dataset.root={nyu}", f"arch={arch}", *ARCHS[arch], *TINY_SEGNET, *FAST,
        "report.baselines=false",
    )  # fmt: skip
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed"
    test = summary["metrics"]["last"]["test"]
    assert {t: set(m) for t, m in test.items()} == NYU_METRICS
    assert all(math.isfinite(v) for metrics in test.values() for v in metrics.values())
    assert summary["directions"]["normal"] == {
        "mean": False,
        "median": False,
        "within_11_25": True,
        "within_22_5": True,
        "within_30": True,
    }


def test_nyuv2_report_puts_the_published_metrics_into_delta_m(cli, nyu: Path):
    result = cli(
        "dataset=nyuv2", f"dataset.root={nyu}", "arch=hps", "tasks=segmentation_depth", *TINY_SEGNET, *FAST,
        "dataset.augment=true",
    )  # fmt: skip
    assert result.code == 0, result.err
    run = result.run_dirs()[-1]
    summary = json.loads((run / "summary.json").read_text())
    transfer = json.loads((run / "transfer.json").read_text())
    assert {t: set(v["metrics"]) for t, v in transfer["tasks"].items()} == {
        t: NYU_METRICS[t] for t in ("segmentation", "depth")
    }
    assert "delta_m_drop" in transfer
    report = (run / "report.md").read_text()
    for metric in ("miou", "pix_acc", "abs_err", "rel_err"):  # the per-metric table: what enters Δm
        assert f"| {metric} |" in report
    assert summary["status"] == "completed" and (run / "plots").is_dir()


def test_cityscapes_run(cli, tmp_path: Path, no_plots):
    root = write_cityscapes(tmp_path / "cityscapes", n_train=4, n_val=2)
    result = cli(
        "dataset=cityscapes", f"dataset.root={root}", "dataset.labels=label_19", "arch=mtan", *TINY_SEGNET, *FAST,
        "report.baselines=false",
    )  # fmt: skip
    assert result.code == 0, result.err
    summary = result.summary()
    assert set(summary["metrics"]["last"]["test"]) == {"segmentation", "depth"}
    assert summary["dataset_info"]["num_classes"] == 19
    # same config and seed, augmentation on: the same metrics
    args = ["dataset=cityscapes", f"dataset.root={root}", "dataset.augment=true", *TINY_SEGNET, *FAST]
    first = cli(*args, "report.baselines=false")
    second = cli(*args, "report.baselines=false")
    assert first.code == second.code == 0, first.err + second.err
    runs = first.run_dirs()[-2:]
    metrics = [json.loads((r / "summary.json").read_text())["metrics"]["last"]["test"] for r in runs]
    assert metrics[0] == metrics[1]


def test_dense_task_on_a_vector_encoder_is_one_line(cli, nyu: Path):
    result = cli("dataset=nyuv2", f"dataset.root={nyu}", "encoder=cnn", *FAST, "report.baselines=false")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and "segnet" in result.err


def test_missing_data_is_one_line_through_the_console_script(tmp_path: Path):
    result = run_subprocess("dataset=nyuv2", "arch=hps", cwd=tmp_path, env={"MTLRUN_DATA": str(tmp_path / "none")})
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "none" / "nyuv2") in lines[0] and "dropbox" in lines[0]

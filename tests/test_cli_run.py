"""The real entry point end to end: folder layout, determinism, help, synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from tests.conftest import TINY, TINY_SYNTHETIC, run_subprocess


def test_run_folder_layout(cli):
    result = cli(*TINY, "report.baselines=false")  # the default run with baselines: test_cli_smoke.py
    assert result.code == 0, result.err
    folder = result.run_dirs()[-1]
    for name in (
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "run.log",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/last.pt",
    ):
        assert (folder / name).exists(), name
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert {r["metric"] for r in rows if r["split"] == "train"} >= {"loss", "weight"}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["parameters"]["total"] == summary["parameters"]["shared"] + sum(
        summary["parameters"]["per_task"].values()
    )
    assert set(summary["versions"]) >= {"python", "torch", "mtlrun"}
    assert summary["metrics"]["best"]["epoch"] in (1, 2)
    assert summary["directions"]["sum"] == {"mae": False, "rmse": False, "r2": True}
    checkpoint = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and "model" in checkpoint and "optimizer" in checkpoint
    assert "run folder:" in result.out and "left" in result.out


def test_same_config_and_seed_give_identical_metrics(cli, tmp_path):
    # the MTL run only: baselines are trained by the same Trainer (tests/train/test_baselines.py)
    args = [*TINY, "report.baselines=false"]
    first = cli(*args, "seed=3", cwd=tmp_path)
    second_dir = tmp_path / "again"
    second_dir.mkdir()
    second = cli(*args, "seed=3", cwd=second_dir)
    a = json.dumps(first.summary()["metrics"], sort_keys=True)
    b = json.dumps(second.summary()["metrics"], sort_keys=True)
    assert a == b
    other = cli(*args, "seed=4", cwd=second_dir)
    assert json.dumps(other.summary()["metrics"], sort_keys=True) != a


def test_synthetic_dataset_and_task_subset(cli):
    result = cli(*TINY_SYNTHETIC, "dataset.correlation=0.5", "dataset.num_tasks=3", "tasks.names=[t1,t3]")
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["run"]["tasks"] == ["t1", "t3"]
    assert summary["run"]["encoder"] == "mlp"


def test_fixed_weights_are_used(cli):
    result = cli(
        *TINY, "balancer=fixed", "tasks=digits_left_right", "tasks.weights={left:2.0}", "report.baselines=false"
    )
    assert result.code == 0, result.err
    rows = [json.loads(x) for x in (result.run_dirs()[-1] / "metrics.jsonl").read_text().splitlines()]
    weights = {r["task"]: r["value"] for r in rows if r["metric"] == "weight" and r["epoch"] == 1}
    assert weights == {"left": 2.0, "right": 1.0}


def test_help_lists_every_group_and_choice(tmp_path):
    result = run_subprocess("--help", cwd=tmp_path)
    assert result.code == 0
    for word in (
        "dataset:",
        "multi_digits",
        "synthetic",
        "arch:",
        "hps",
        "single_task",
        "balancer:",
        "ew",
        "fixed",
        "tasks:",
        "digits_left_right",
        "encoder:",
        "cnn",
        "mlp",
    ):
        assert word in result.out
    assert "Hard parameter sharing" in result.out


def test_cli_module_does_not_import_torch():
    code = "import sys, mtlrun.cli.main, mtlrun.cli.help; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_two_runs_started_together_get_distinct_folders(tmp_path):
    exe = [sys.executable, "-m", "mtlrun", "trainer.epochs=1", "dataset=synthetic", "dataset.num_samples=300"]
    exe += ["report.baselines=false", "diagnostics.every=0"]
    procs = [subprocess.Popen(exe, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    folders = list(tmp_path.glob("outputs/*/*/summary.json"))
    assert len(folders) == 2

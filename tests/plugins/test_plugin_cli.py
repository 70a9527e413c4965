"""A user's own encoder, architecture, balancer and metric through the real ``mtlrun`` entry point:
by import path from the launch folder, and by entry-point name once installed (pip)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_subprocess
from tests.plugins.helpers import EXAMPLE, PACKAGE, TINY, copy_package, forget_imports

BY_PATH = [
    f"dataset._target_={PACKAGE}.datasets.two_tasks",
    f"+dataset.binary_metrics=[accuracy,{PACKAGE}.metrics.BrierScore]",
    f"encoder._target_={PACKAGE}.encoders.ResidualMLP",
    "+encoder.width=16",
    f"arch._target_={PACKAGE}.archs.TaskGates",
    f"balancer._target_={PACKAGE}.balancers.AndMask",
    "+balancer.agreement=0.5",
]
BY_NAME = ["dataset=two_tasks", "encoder=residual_mlp", "encoder.width=16", "arch=task_gates", "balancer=lbtw"]
REPORT = ("summary.json", "metrics.jsonl", "transfer.json", "report.md")


def _check_run(result, balancer: str, brier: str) -> dict:
    assert result.code == 0, result.err
    (folder,) = result.run_dirs()
    for name in REPORT:
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["run"]["balancer"] == balancer
    assert summary["directions"]["sign"] == {"accuracy": True, brier: False}
    transfer = json.loads((folder / "transfer.json").read_text())
    assert set(transfer["tasks"]) == {"sign", "score"}
    assert brier in (folder / "report.md").read_text()
    return summary


def test_a_package_in_the_launch_folder_trains_through_target_with_the_report(tmp_path):
    copy_package(tmp_path)
    result = run_subprocess(*BY_PATH, *TINY, "report.baselines=true", cwd=tmp_path)
    summary = _check_run(result, f"{PACKAGE}.balancers.AndMask", "BrierScore")
    assert summary["run"]["arch"] == f"{PACKAGE}.archs.TaskGates"
    assert summary["encoder"] == {"name": f"{PACKAGE}.encoders.ResidualMLP", "width": 16, "blocks": 2, "dropout": 0.0}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["+balancer.agreemnt=0.5"], "unknown key 'balancer.agreemnt'; valid keys: agreement, rep_grad, scale_inverse"),
        (["balancer.agreement=most"], "balancer.agreement=most: Value 'most' of type 'str' could not be converted"),
        (["balancer.agreement=2"], "balancer.agreement=2.0 must be in [0, 1]"),
        ([f"balancer._target_={PACKAGE}.archs.TaskGates"], "TaskGates is not a subclass of LossWeighting or"),
        ([f"balancer._target_={PACKAGE}.balancers.Nope"], "has no attribute or submodule 'Nope'"),
        ([f"arch._target_={PACKAGE}.balancers.AndMask"], "AndMask is not a subclass of MultiTaskModel"),
    ],
)
def test_a_wrong_option_or_class_fails_in_one_line_before_a_folder_exists(cli, tmp_path, extra, message):
    copy_package(tmp_path)
    forget_imports()
    result = cli(f"balancer._target_={PACKAGE}.balancers.AndMask", *extra, "trainer.epochs=1")
    forget_imports()
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.err
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "metric, message",
    [
        ("nowhere_pkg.Metric", "dataset.tasks.y.metrics=nowhere_pkg.Metric does not import: ModuleNotFoundError"),
        ("undirected.Score", "dataset.tasks.y.metrics: undirected.Score declares no direction (higher_is_better=None)"),
        ("undirected.NotAMetric", "undirected.NotAMetric is not a torchmetrics.Metric subclass"),
    ],
)
def test_a_wrong_metric_fails_in_one_line_before_a_folder_exists(cli, tmp_path, metric, message):
    (tmp_path / "t.csv").write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    (tmp_path / "undirected.py").write_text(
        "from torchmetrics import Metric\n\nclass Score(Metric):\n    pass\n\nclass NotAMetric:\n    pass\n"
    )
    forget_imports()
    result = cli(
        "dataset=table", "dataset.path=t.csv", f"dataset.tasks={{y: {{kind: binary, metrics: [auroc, {metric}]}}}}"
    )
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.err
    assert not (tmp_path / "outputs").exists()


def test_a_wrong_option_of_the_users_balancer_fails_through_the_console_script(tmp_path):
    copy_package(tmp_path)
    result = run_subprocess(f"balancer._target_={PACKAGE}.balancers.AndMask", "+balancer.treshold=1", cwd=tmp_path)
    assert result.code == 2
    assert result.err.strip() == (
        "mtlrun: error: unknown key 'balancer.treshold'; valid keys: agreement, rep_grad, scale_inverse_sparsity"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [PACKAGE]


def test_an_installed_plugin_trains_in_process_through_its_names(cli, installed, tmp_path):
    result = cli(*BY_NAME, "+balancer.alpha=0.25", *TINY, "report.baselines=false", cwd=tmp_path)
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed" and summary["run"]["balancer"] == "lbtw"
    assert summary["directions"]["sign"] == {"accuracy": True, "brier": False}


def _pip_install(target: Path, source: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_a_pip_installed_plugin_is_listed_and_trains_through_its_names_with_the_report(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    _pip_install(site, source)
    env = {"PYTHONPATH": str(site)}
    listing = run_subprocess("--help", cwd=work, env=env)
    for name in ("two_tasks", "residual_mlp", "task_gates", "lbtw", "and_mask", "brier"):
        assert any(
            line.strip().startswith(name) and "[plugin: mtlrun-example-plugin 0.1.0]" in line
            for line in listing.out.splitlines()
        ), name
    shown = run_subprocess(*BY_NAME, "--cfg", "job", cwd=work, env=env)
    assert "balancer:\n  name: lbtw\n  alpha: 0.5\n" in shown.out
    result = run_subprocess(*BY_NAME, "+balancer.alpha=0.25", *TINY, "report.baselines=true", cwd=work, env=env)
    _check_run(result, "lbtw", "brier")

"""Mistakes found after the run folder exists: the folder this invocation made is removed (kept when
resuming), one line ``mtlrun: error: ...`` names the key, exit status 2; a tracker that fails during
the run fails it (exit status 1), never a warning and exit status 0."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import pytest

from mtlrun.loggers import csv_logger
from tests.conftest import run_subprocess
from tests.sweep_helpers import SMALL

FAST = ["trainer.epochs=1", "diagnostics.every=0", "report.baselines=false"]

DATASETS = """
import numpy as np


def split(rng, m, width=4):
    x = rng.normal(size=(m, width)).astype("float32")
    return x, {"y": x[:, 0] + rng.normal(size=m), "z": x[:, 1]}


def good(n: int = 64):
    rng = np.random.default_rng(0)
    return {"tasks": {"y": "regression", "z": "regression"},
            "train": split(rng, n), "val": split(rng, 16), "test": split(rng, 16)}


def boom(n: int = 64):
    raise RuntimeError("cannot read my data")


def wrong_width(n: int = 64):
    rng = np.random.default_rng(0)
    return {"tasks": {"y": "regression", "z": "regression"},
            "train": split(rng, n), "val": split(rng, 16, width=5), "test": split(rng, 16)}
"""


def one_error_line(result, *needles: str) -> str:
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("mtlrun: error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.err + result.out
    return lines[0]


def nothing_left(cwd: Path) -> None:
    assert not (cwd / "outputs").exists() and not (cwd / "multirun").exists(), sorted(map(str, cwd.rglob("*")))


@pytest.fixture
def user_data(tmp_path: Path) -> str:
    """A module of dataset functions in the launch folder, under a name unique to the test."""
    name = f"user_data_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(DATASETS))
    return name


@pytest.mark.parametrize(
    ("function", "names"),
    [("boom", "raised RuntimeError: cannot read my data"), ("wrong_width", "the val inputs have shape (5,)")],
)
def test_a_user_dataset_failing_its_contract_is_one_line_and_no_folder(cli, user_data, function, names):
    result = cli("dataset=python", f"dataset._target_={user_data}.{function}", *FAST)
    assert result.code == 2
    one_error_line(result, f"dataset._target_={user_data}.{function}", names)
    nothing_left(result.cwd)


def test_through_the_console_script(tmp_path, user_data):
    result = run_subprocess("dataset=python", f"dataset._target_={user_data}.boom", *FAST, cwd=tmp_path)
    assert result.code == 2
    one_error_line(result, "dataset._target_=", "RuntimeError")
    nothing_left(tmp_path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["logger=csv", "logger.dir=in_the_way/csv"], "logger.dir=in_the_way/csv"),
        (["logger=csv", "logger.dir=in_the_way"], "is a file"),
        (["logger=tensorboard", "logger.log_dir=in_the_way/tb"], "logger.log_dir=in_the_way/tb"),
        (["logger=mlflow", "logger.tracking_uri=nope://x"], "unknown scheme 'nope'"),
        (["logger=mlflow", "logger.tracking_uri=http://"], "names no host"),
        (["logger=mlflow", "logger.tracking_uri=sqlite:///in_the_way/db.sqlite"], "logger.tracking_uri="),
        (["logger=mlflow", "logger.tracking_uri=http://127.0.0.1:PORT"], "cannot be reached"),
    ],
)
def test_a_tracker_that_cannot_start_is_refused_before_the_folder(cli, tmp_path, monkeypatch, overrides, names):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # the closed port is probed directly
    (tmp_path / "in_the_way").write_text("a file, not a folder\n")
    overrides = [o.replace("PORT", str(closed_port())) for o in overrides]
    result = cli(*overrides, *SMALL)
    assert result.code == 2
    one_error_line(result, names)
    nothing_left(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in_the_way"]


def test_a_tracker_failing_to_start_after_the_folder_exists_removes_it(cli, monkeypatch):
    def refuse(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv_logger.CsvLogger, "start", refuse)
    result = cli("logger=csv", *SMALL)
    assert result.code == 2
    one_error_line(result, "logger=csv cannot start", "No space left")
    nothing_left(result.cwd)


def test_a_tracker_failing_during_the_run_fails_it(cli, monkeypatch):
    original = csv_logger.CsvLogger.log_scalars

    def broken(self, scalars, step):
        if step == 2:  # after epoch 1 and its checkpoint
            raise OSError(5, "Input/output error")
        original(self, scalars, step)

    monkeypatch.setattr(csv_logger.CsvLogger, "log_scalars", broken)
    result = cli("logger=csv", *SMALL)
    assert result.code == 1
    one_error_line(result, "logger=csv failed in log_epoch", "Input/output error", "resume=")
    [folder] = result.run_dirs()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and "logger=csv" in summary["error"]


def test_a_config_error_while_resuming_keeps_the_folder(cli, tmp_path, user_data):
    first = cli("dataset=python", f"dataset._target_={user_data}.good", *FAST)
    assert first.code == 0, first.err
    [folder] = first.run_dirs()
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    summary = (folder / "summary.json").read_text()
    module = tmp_path / f"{user_data}.py"
    module.write_text(module.read_text().replace("def good(n: int = 64):\n", "def good(n: int = 64):\n    1 / 0\n"))
    import sys

    sys.modules.pop(user_data, None)
    result = cli(f"resume={folder}", "trainer.epochs=2")
    assert result.code == 2
    one_error_line(result, "ZeroDivisionError")
    assert folder.is_dir() and before == sorted(p.relative_to(folder) for p in folder.rglob("*"))
    assert (folder / "summary.json").read_text() == summary  # still the completed run's


@pytest.mark.parametrize(
    ("sweep", "names"),
    [(["arch=hps,nope"], "arch=nope is not valid"), (["trainer.lr=0.01,-1"], "trainer.lr=-1")],
)
def test_a_bad_value_in_a_sweep_is_refused_before_the_sweep_folder(cli, sweep, names):
    result = cli("-m", *sweep, *SMALL)
    assert result.code == 2
    one_error_line(result, names)
    nothing_left(result.cwd)


def test_the_jobs_checked_before_a_sweep():
    from omegaconf import OmegaConf

    from mtlrun.cli.folder_guard import BASIC_SWEEPER, CHECK_EVERY_JOB, sweep_jobs

    def config(task: list[str], params: dict | None = None, target: str = BASIC_SWEEPER):
        return OmegaConf.create(
            {"hydra": {"sweeper": {"_target_": target, "params": params}, "overrides": {"task": task}}}
        )

    small = sweep_jobs(config(["arch=hps,mmoe", "trainer.epochs=1"], {"seed": "0,1"}))
    assert sorted(small) == sorted(
        [[f"seed={s}", f"arch={a}", "trainer.epochs=1"] for s in (0, 1) for a in ("hps", "mmoe")]
    )
    seeds = CHECK_EVERY_JOB + 8
    large = sweep_jobs(config([f"seed=range({seeds})", "arch=hps,mmoe,nope"]))
    assert len(large) == seeds  # every value once, not the product
    assert {job[1] for job in large} == {"arch=hps", "arch=mmoe", "arch=nope"}
    assert {job[0] for job in large} == {f"seed={s}" for s in range(seeds)}
    assert (
        sweep_jobs(config(["seed=0,1"], target="hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper")) == []
    )


def test_a_sweep_job_whose_data_fails_stops_a_new_sweep(cli, user_data):
    first = cli("-m", "dataset=python", f"dataset._target_={user_data}.boom,{user_data}.good", *FAST)
    assert first.code == 2
    one_error_line(first, f"dataset._target_={user_data}.boom raised RuntimeError")
    nothing_left(first.cwd)
    later = cli("-m", "dataset=python", f"dataset._target_={user_data}.good,{user_data}.boom", *FAST)
    assert later.code == 2
    one_error_line(later, "raised RuntimeError", "(job 1; the sweep stopped there: its 1 earlier job(s) are kept")
    [sweep] = [p.parent for p in (later.cwd / "multirun").rglob("multirun.yaml")]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["0"]
    assert json.loads((sweep / "0" / "summary.json").read_text())["status"] == "completed"  # nothing written is lost

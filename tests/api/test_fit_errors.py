"""``mtlrun.fit`` raises where the command exits non-zero: the same one line, the exit status on the error,
and a config mistake leaves nothing behind."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest

import mtlrun
from mtlrun.train import run as train_run
from mtlrun.train.signals import Interrupted

QUICK = [
    "dataset=synthetic",
    "dataset.num_samples=300",
    "dataset.input_dim=8",
    "trainer.epochs=1",
    "diagnostics.every=0",
    "report.baselines=false",
]


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture
def launch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "bad",
    [
        ["arch=nope"],  # a group choice, while composing
        ["trainer.lr=abc"],  # a type, while composing
        ["nope=1"],  # an unknown key
        ["trainer.lr=-1"],  # a range, before the folder exists (the folder guard's checks)
        ["tasks.names=[nope]"],  # a task the dataset lacks, found once the data is read
        ["trainer.lr"],  # a malformed override, before Hydra starts
    ],
    ids=["choice", "type", "key", "range", "task", "syntax"],
)
def test_a_config_mistake_is_the_commands_one_line_and_writes_nothing(bad, launch, cli):
    with pytest.raises(mtlrun.ConfigError) as raised:
        mtlrun.fit(overrides=[*QUICK, *bad])
    assert list(launch.iterdir()) == []
    assert raised.value.exit_code == 2
    command = cli(*QUICK, *bad, cwd=launch)
    assert command.code == 2
    assert command.err.strip() == f"mtlrun: error: {raised.value}"
    assert list(launch.iterdir()) == []


def test_a_folder_holding_a_run_is_refused_and_kept_as_it_was(launch):
    first = mtlrun.fit(overrides=[*QUICK, "hydra.run.dir=exp1"])
    before = fingerprint(first.folder)
    with pytest.raises(mtlrun.ConfigError, match="already holds a run"):
        mtlrun.fit(overrides=[*QUICK, "hydra.run.dir=exp1", "seed=1"])
    assert fingerprint(first.folder) == before
    assert sorted(p.name for p in launch.iterdir()) == ["exp1"]


@pytest.mark.parametrize(
    "bad, says",
    [
        ("trainer.epochs=1", "must be a list of strings"),
        (["-m", "seed=0,1"], "'-m' is a command-line flag"),
        (["seed=0,1"], "mtlrun.sweep"),
    ],
)
def test_overrides_that_are_not_one_run_are_refused(bad, says, launch):
    with pytest.raises(mtlrun.ConfigError, match=says):
        mtlrun.fit(overrides=bad)
    assert list(launch.iterdir()) == []


def test_a_diverged_run_raises_with_the_commands_line_and_its_result(launch, cli):
    overrides = [*QUICK, "trainer.lr=1e8", "trainer.optimizer=sgd"]
    with pytest.raises(mtlrun.RunDiverged) as raised:
        mtlrun.fit(overrides=overrides)
    error = raised.value
    assert error.exit_code == 3
    assert error.result is not None and error.result.status == "diverged" and error.folder == error.result.folder
    assert error.result == mtlrun.load_run(error.folder)
    command = cli(*overrides, cwd=launch)
    assert command.code == 3
    folder = sorted(p for p in launch.glob("outputs/*/*") if p != error.folder)[-1]
    assert command.err.strip() == f"mtlrun: {error}".replace(str(error.folder), str(folder))


def test_a_failing_run_raises_run_failed_with_its_recorded_result(launch, monkeypatch):
    def broken(self, callbacks=()):
        raise RuntimeError("boom")

    monkeypatch.setattr(train_run.Trainer, "fit", broken)
    with pytest.raises(mtlrun.RunFailed, match="RuntimeError: boom") as raised:
        mtlrun.fit(overrides=QUICK)
    result = raised.value.result
    assert raised.value.exit_code == 1 and isinstance(raised.value.__cause__, RuntimeError)
    assert result is not None and result.status == "failed" and result.error == "RuntimeError: boom"


def test_an_interrupted_run_raises_run_interrupted_naming_how_to_continue(launch, monkeypatch):
    def stopped(self, callbacks=()):
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(train_run.Trainer, "fit", stopped)
    with pytest.raises(mtlrun.RunInterrupted) as raised:
        mtlrun.fit(overrides=QUICK)
    error = raised.value
    assert error.exit_code == 143 and error.folder is not None and error.folder.is_dir()
    assert f"resume={error.folder}" in str(error) and error.result is not None


@pytest.mark.parametrize(
    "bad",
    [["logger=csv", "logger.dir=in_the_way/csv"], ["logger=mlflow", "logger.tracking_uri=nope://x"]],
    ids=["log folder", "tracking uri"],
)
def test_a_tracker_that_cannot_start_is_a_config_error(bad, launch, cli):
    (launch / "in_the_way").write_text("a file\n")
    with pytest.raises(mtlrun.ConfigError) as raised:
        mtlrun.fit(overrides=[*QUICK, *bad])
    command = cli(*QUICK, *bad, cwd=launch)
    assert command.code == 2 and command.err.strip() == f"mtlrun: error: {raised.value}"
    assert sorted(p.name for p in launch.iterdir()) == ["in_the_way"]


def test_a_user_dataset_that_raises_is_a_config_error(launch):
    (launch / "api_boom_data.py").write_text("def build(n: int = 8):\n    raise KeyError('no column y')\n")
    with pytest.raises(mtlrun.ConfigError, match="dataset._target_=api_boom_data.build raised KeyError"):
        mtlrun.fit(overrides=["dataset=python", "dataset._target_=api_boom_data.build", "trainer.epochs=1"])
    assert sorted(p.name for p in launch.iterdir()) == ["api_boom_data.py"]


def test_a_sweep_with_a_bad_choice_writes_nothing(launch):
    with pytest.raises(mtlrun.ConfigError, match="arch=nope is not valid"):
        mtlrun.sweep(overrides=[*QUICK, "arch=hps,nope"])
    assert list(launch.iterdir()) == []


def test_a_tracker_failing_during_the_run_is_run_failed(launch, monkeypatch):
    from mtlrun.loggers import csv_logger

    def broken(self, scalars, step):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(csv_logger.CsvLogger, "log_scalars", broken)
    with pytest.raises(mtlrun.RunFailed, match="logger=csv failed in log_epoch") as raised:
        mtlrun.fit(overrides=[*QUICK, "logger=csv"])
    assert raised.value.result is not None and raised.value.result.status == "failed"

"""``mtlrun.fit`` writes the folder the ``mtlrun`` command writes: the same files, config, Hydra records,
log lines and metrics for the same overrides and seed (only timestamps, timings and paths differ)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import mtlrun
from tests.conftest import run_subprocess

TINY = [
    "dataset=synthetic",
    "dataset.num_samples=400",
    "dataset.input_dim=8",
    "trainer.epochs=1",
    "trainer.batch_size=64",
    "diagnostics.every=0",
]
#: the summary's entries that measure time
TIMED = ("timings",)


def only_run_folder(root: Path) -> Path:
    folders = sorted(p.parent for p in root.glob("outputs/*/*/summary.json"))
    assert len(folders) == 1, folders
    return folders[0]


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def log_lines(folder: Path) -> list[str]:
    """run.log without timestamps, durations and the run folder's own path."""
    text = (folder / "run.log").read_text(encoding="utf-8")
    lines = text.replace(str(folder.resolve()), "RUN_FOLDER").replace(str(folder), "RUN_FOLDER").splitlines()
    return [re.sub(r"\d+(\.\d+)? s\b", "N s", re.sub(r"^\[[^]]*\]", "", line)) for line in lines]


def hydra_record(folder: Path) -> dict:
    record = yaml.safe_load((folder / ".hydra" / "hydra.yaml").read_text(encoding="utf-8"))
    runtime = record["hydra"]["runtime"]
    assert Path(runtime.pop("output_dir")) == folder.resolve()
    runtime.pop("cwd")
    return record


def untimed_summary(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return {k: v for k, v in summary.items() if k not in TIMED}


def metric_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def run_both(tmp_path: Path, overrides: list[str]) -> tuple[Path, Path, mtlrun.RunResult]:
    """The same command line through the console script and through ``mtlrun.fit``, each in a launch
    folder of its own (so each trains its own baselines, as a first run does)."""
    by_command, by_api = tmp_path / "command", tmp_path / "api"
    by_command.mkdir()
    by_api.mkdir()
    done = run_subprocess(*overrides, cwd=by_command)
    assert done.code == 0, done.err
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(by_api)
        result = mtlrun.fit(overrides=overrides)
    return only_run_folder(by_command), only_run_folder(by_api), result


def assert_same_folder(command: Path, api: Path) -> None:
    assert files(api) == files(command)
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml"):
        assert (api / name).read_text(encoding="utf-8") == (command / name).read_text(encoding="utf-8"), name
    assert hydra_record(api) == hydra_record(command)
    assert metric_rows(api) == metric_rows(command)
    assert untimed_summary(api) == untimed_summary(command)
    assert log_lines(api) == log_lines(command)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param([*TINY, "report.baselines=false"], id="synthetic"),
        pytest.param(
            ["trainer.epochs=1", "report.baselines=false", "diagnostics.every=0"], id="default", marks=pytest.mark.slow
        ),
    ],
)
def test_fit_writes_the_commands_folder(tmp_path, overrides):
    command, api, result = run_both(tmp_path, overrides)
    assert_same_folder(command, api)
    assert result.folder == api.resolve() and result.status == "completed"
    assert result.overrides == overrides
    summary = json.loads((command / "summary.json").read_text(encoding="utf-8"))
    assert result.metrics == summary["metrics"]["best"]["test"]  # the command's numbers, to the last digit
    assert result.best_epoch == summary["metrics"]["best"]["epoch"]
    assert result.transfer is None and result.delta_m is None


def test_fit_with_baselines_writes_the_commands_report(tmp_path):
    command, api, result = run_both(tmp_path, TINY)
    assert_same_folder(command, api)

    def report(folder: Path) -> dict:
        data = json.loads((folder / "transfer.json").read_text(encoding="utf-8"))
        for run in data["pooled_runs"]:
            assert run.pop("folder") == str(folder.relative_to(folder.parents[2]))
        data["cost"].pop("mtl_train_s"), data["cost"].pop("baseline_train_s")  # timings
        return data

    assert report(api) == report(command)
    transfer = json.loads((command / "transfer.json").read_text(encoding="utf-8"))
    assert result.transfer is not None and result.delta_m == transfer["own"]["delta_m"]
    assert result.transfer.delta_m == transfer["delta_m"]
    assert {t: v.delta for t, v in result.transfer.tasks.items()} == {
        t: v["delta"] for t, v in transfer["tasks"].items()
    }

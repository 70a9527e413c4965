"""Small things a user relies on: the run folder named at the start, timings that add up after a
resume, no spread for one seed, and a warning when mtlrun-compare ranks unlike runs together."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mtlrun.report.compare import main as compare_main
from mtlrun.report.transfer import judge_task, mean_std
from mtlrun.results.transfer_report import MetricTransfer
from tests.report.helpers import make_run
from tests.sweep_helpers import SMALL


def test_the_run_folder_is_printed_before_training(cli):
    result = cli(*SMALL)
    assert result.code == 0, result.err
    [folder] = result.run_dirs()
    lines = result.out.splitlines()
    first = lines.index(f"run folder: {folder}")
    training = next(i for i, line in enumerate(lines) if line.startswith("training "))
    assert first < training  # known at once, even if the run is killed with SIGKILL later
    assert f"run folder: {folder}" in (folder / "run.log").read_text()


def test_timings_after_a_resume_cover_every_session(cli, tmp_path):
    first = cli(*SMALL, "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert first.code == 0, first.err
    before = json.loads((tmp_path / "run" / "summary.json").read_text())["timings"]
    more = cli(f"resume={tmp_path / 'run'}", "trainer.epochs=2")
    assert more.code == 0, more.err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    timings = summary["timings"]
    assert summary["resumed_after"] == [{"epoch": 1, "step": before["steps"]}]
    assert timings["train_s"] > before["train_s"]  # both sessions' training
    assert timings["total_s"] >= timings["train_s"] + timings["eval_s"] - 0.002  # rounding of the three values
    assert timings["total_s"] > before["train_s"] + before["eval_s"]


def test_one_seed_has_no_standard_deviation():
    assert mean_std([0.5]) == (0.5, None)
    mean, std = mean_std([1.0, 3.0])
    assert mean == 2.0 and math.isclose(std, math.sqrt(2.0))
    verdict = judge_task("t", [{"acc": 0.5}], [{"acc": 0.9}, {"acc": 0.8}], {"acc": True})
    assert verdict.metrics["acc"]["mtl_std"] is None and verdict.metrics["acc"]["stl_std"] is not None
    assert MetricTransfer(**verdict.metrics["acc"]).mtl_std is None


def compare_err(paths: list[Path], capsys) -> tuple[int, list[str]]:
    code = compare_main([str(p) for p in paths])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def test_compare_warns_when_ranking_different_datasets(tmp_path, capsys):
    make_run(tmp_path / "a", dataset="synthetic", arch="hps")
    make_run(tmp_path / "b", dataset="multi_digits", arch="mmoe")
    code, lines = compare_err([tmp_path], capsys)
    assert code == 0
    [warning] = [line for line in lines if "different datasets" in line]
    assert warning.startswith("mtlrun-compare: warning: ") and "multi_digits; synthetic" in warning


def test_compare_warns_when_ranking_different_task_sets(tmp_path, capsys):
    make_run(tmp_path / "a", arch="hps")
    b = make_run(tmp_path / "b", arch="mmoe")
    summary = json.loads((b / "summary.json").read_text())
    for split in summary["metrics"].values():
        for part in ("val", "test"):
            split.get(part, {}).pop("b", None)
    summary["primary"].pop("b")
    summary["directions"].pop("b")
    (b / "summary.json").write_text(json.dumps(summary))
    code, lines = compare_err([tmp_path], capsys)
    assert code == 0
    [warning] = [line for line in lines if "different task sets" in line]
    assert "a; a,b" in warning


def test_compare_of_like_runs_does_not_warn(tmp_path, capsys):
    make_run(tmp_path / "a", arch="hps")
    make_run(tmp_path / "b", arch="mmoe")
    code, lines = compare_err([tmp_path], capsys)
    assert code == 0 and not [line for line in lines if "warning" in line]

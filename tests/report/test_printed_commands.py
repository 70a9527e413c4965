"""Every command the report prints (terminal and report.md) runs as printed: list values keep their
brackets, the run's --config-dir comes along, and a resume's own override does not."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from mtlrun.report.grouping import training_commands
from mtlrun.results.run_folder import LaunchArguments, RunFolder
from tests.conftest import TINY, TINY_SYNTHETIC

MY_DATASET = "defaults:\n  - /schema/dataset/synthetic@_here_\n  - _self_\nnum_tasks: 3\nnum_samples: 600\n"


def composes_as_printed(printed: str, cwd: Path) -> None:
    """Run ``printed`` through a shell with ``--cfg job``; a sweep (``-m``) composes its first job."""
    words = shlex.split(printed)
    assert words[0] == "mtlrun"
    parser = OverridesParser.create()
    job = []
    for word in words[1:]:
        if word == "-m":
            continue
        if "=" in word and not word.startswith("-"):
            override = parser.parse_overrides([word])[0]
            if override.is_sweep_override():
                word = f"{override.get_key_element()}={next(override.sweep_string_iterator())}"
        job.append(word)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    line = " ".join(shlex.quote(w) for w in ["mtlrun", *job, "--cfg", "job"])
    out = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{printed}\n{out.stderr[-1500:]}"


def test_the_verdict_command_runs_as_printed(cli, tmp_path):
    (tmp_path / "myconf" / "dataset").mkdir(parents=True)
    (tmp_path / "myconf" / "dataset" / "mysynth.yaml").write_text(MY_DATASET)
    args = ("--config-dir", "myconf", "dataset=mysynth", "tasks.names=[t1,t3]", *TINY, "diagnostics.every=0")
    result = cli(*args)
    assert result.code == 0, result.err
    [printed] = [line.removeprefix("for verdicts: ") for line in result.out.splitlines() if "for verdicts:" in line]
    assert "'tasks.names=[t1,t3]'" in printed and "--config-dir" in printed
    composes_as_printed(printed, tmp_path)
    [folder] = result.run_dirs()
    text = (folder / "report.md").read_text()
    in_markdown = re.findall(r"```\n(mtlrun [^\n]*)\n```", text)
    assert in_markdown == [printed]
    # one seed: no verdict, so nothing is ranked, and both outputs say why
    assert "what to try: No task has a verdict yet (1 seed(s) pooled" in result.out
    assert "nothing is ranked" in text.split("## What to try")[1] and printed_commands(text) == [printed]


def test_grouping_commands_run_as_printed(tmp_path):
    launch = LaunchArguments(flags=[], overrides=[*TINY_SYNTHETIC, "dataset.num_tasks=4", "seed=3"])
    for entry in training_commands([["t1", "t2"], ["t3", "t4"]], launch):
        composes_as_printed(entry["command"], tmp_path)


def test_a_resumed_runs_command_line_leaves_out_the_resume(tmp_path):
    hydra = {"hydra": {"runtime": {"config_sources": [{"path": "mtlrun.conf", "schema": "pkg", "provider": "main"}]}}}
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["arch=mmoe", f"resume='{tmp_path}'"]))
    assert RunFolder(tmp_path).read_launch() == LaunchArguments(flags=[], overrides=["arch=mmoe"])


def printed_commands(text: str) -> list[str]:
    """Every suggestion command of a terminal output or a report.md: the lines that start with ``mtlrun``."""
    return [line.strip() for line in text.splitlines() if line.strip().startswith("mtlrun ")]


def test_planted_what_to_try_commands_run_as_printed(tmp_path):
    """Every kind of candidate, from a launch with fixed task weights and a list value."""
    from mtlrun.report.advice import what_to_try
    from mtlrun.report.grouping import suggest_grouping
    from mtlrun.results.transfer_report import NEGATIVE, TaskTransfer, TransferReport

    overrides = [*TINY_SYNTHETIC, "dataset.num_tasks=3", "balancer=fixed", "tasks.weights={t1:30}", "seed=2"]
    launch = LaunchArguments(flags=[], overrides=overrides)
    tasks = ["t1", "t2", "t3"]
    for arch, balancer, negative in (("hps", "fixed", ["t3"]), ("mmoe", "pcgrad", ["t2", "t3"]), ("hps", "ew", tasks)):
        report = TransferReport(
            run={"tasks": tasks, "arch": arch, "balancer": balancer},
            seeds=[0, 1, 2],
            tasks={t: TaskTransfer(verdict=NEGATIVE if t in negative else "no significant difference") for t in tasks},
            config={"encoder": {"name": "mlp"}},
        )
        split = {i: {j: 0.0 if i == j else (0.3 if "t3" not in (i, j) else -0.1) for j in tasks} for i in tasks}
        report.grouping = suggest_grouping(tasks, [split, split], 2, launch)
        pairs = {("t1", "t2"): (0.3, 0.1), ("t1", "t3"): (-0.2, 0.8), ("t2", "t3"): (-0.2, 0.8)}
        for candidate in what_to_try(report, launch, [pairs], [split, split])["candidates"]:
            composes_as_printed(candidate["command"], tmp_path)


@pytest.mark.slow
def test_what_to_try_commands_run_as_printed(cli, tmp_path):
    """A real two-seed sweep in which t3, its loss weighted 30 times less, loses to its baseline."""
    from mtlrun.report.advice import what_to_try
    from mtlrun.report.grouping import suggest_grouping
    from mtlrun.report.negative_transfer import render_markdown

    (tmp_path / "myconf" / "dataset").mkdir(parents=True)
    (tmp_path / "myconf" / "dataset" / "mysynth.yaml").write_text(MY_DATASET)
    starved = ("balancer=fixed", "tasks.weights={t1:30,t2:30}", "report.min_seeds=2", "report.correction=none")
    result = cli("-m", "--config-dir", "myconf", "dataset=mysynth", *starved, *TINY, "seed=0,1", "diagnostics.every=5")
    assert result.code == 0, result.err
    folder = result.run_dirs()[0]
    report = RunFolder(folder).read_transfer()
    assert report is not None and report.negative_tasks == ["t3"]
    assert report.what_to_try["status"] == "negative"
    in_terminal = printed_commands(result.out)
    in_markdown = printed_commands((folder / "report.md").read_text())
    assert in_terminal == [c["command"] for c in report.what_to_try["candidates"]] == in_markdown
    # every kind of candidate from this run's own launch: plant high conflict and a stable split
    launch = RunFolder(folder).read_launch()
    split = {"t1": {"t1": 0.0, "t2": 0.3, "t3": -0.1}, "t2": {"t1": 0.3, "t2": 0.0, "t3": -0.1}}
    split["t3"] = {"t1": -0.1, "t2": -0.1, "t3": 0.0}
    report.grouping = suggest_grouping(["t1", "t2", "t3"], [split, split], 2, launch)
    pairs = {("t1", "t2"): (0.3, 0.1), ("t1", "t3"): (-0.2, 0.8), ("t2", "t3"): (-0.2, 0.8)}
    report.what_to_try = what_to_try(report, launch, [pairs, pairs], [split, split])
    planted = printed_commands(render_markdown(report))
    assert {c["kind"] for c in report.what_to_try["candidates"]} == {"grouping", "balancer", "architecture"}
    for printed in dict.fromkeys(in_terminal + planted):
        assert "'tasks.weights={t1:30,t2:30}'" in printed or "balancer=pcgrad" in printed
        composes_as_printed(printed, tmp_path)

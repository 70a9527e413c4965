"""Every command the report prints (terminal and report.md) runs as printed: list values keep their
brackets, the run's --config-dir comes along, and a resume's own override does not."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

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
    in_markdown = re.findall(r"```\n(mtlrun [^\n]*)\n```", (folder / "report.md").read_text())
    assert in_markdown == [printed]


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

"""Resume: a run stopped at any moment (SIGKILL, SIGINT, or a shorter ``trainer.epochs``) and
continued with ``mtlrun resume=FOLDER`` ends with exactly the metrics of the uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mtlrun.cli.resume import quoted, rewrite_argv
from mtlrun.errors import ConfigError

#: tiny and fast, but with enough steps per epoch that a signal lands in the middle of one
SMALL = [
    "dataset=synthetic",
    "dataset.num_samples=1500",
    "dataset.input_dim=8",
    "trainer.batch_size=32",
    "report.baselines=false",
    "diagnostics.every=7",
]


def metrics(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())["metrics"]


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("mtlrun")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "mtlrun"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [*command, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def wait_for_epochs(folder: Path, epochs: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``summary.json`` until it reports ``epochs`` completed epochs and a checkpoint exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before epoch {epochs}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            done = summary(folder).get("epochs_completed", 0) >= epochs
            if done and (folder / "checkpoints" / "last.pt").is_file():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    raise AssertionError(f"no epoch {epochs} within {timeout} s")


def kill_run(tmp_path: Path, args: list[str], after_epochs: int, sig: int = signal.SIGKILL) -> tuple[Path, int]:
    """Start ``mtlrun ARGS`` in ``tmp_path/killed``, send ``sig`` once ``after_epochs`` epochs are done."""
    folder = tmp_path / "killed"
    proc = start([*args, f"hydra.run.dir={folder}"], tmp_path)
    try:
        wait_for_epochs(folder, after_epochs, proc)
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return folder, code


def test_sigkill_then_resume_equals_the_uninterrupted_run(cli, tmp_path):
    args = [*SMALL, "dataset.num_samples=800", "trainer.epochs=3", "seed=3", "diagnostics.every=0"]
    killed, code = kill_run(tmp_path, args, after_epochs=1)
    assert code == -signal.SIGKILL
    assert summary(killed)["status"] == "running"  # killed mid-run, nothing could record it
    resumed = cli(f"resume={killed}")
    assert resumed.code == 0, resumed.err
    whole = cli(*args, f"hydra.run.dir={tmp_path / 'whole'}")
    assert whole.code == 0, whole.err
    assert metrics(killed) == metrics(tmp_path / "whole")
    assert summary(killed)["status"] == "completed"
    assert summary(killed)["resumed_after"][0]["epoch"] >= 1
    rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in rows if r["split"] == "val" and r["metric"] == "loss" and r["task"] == "t1"]
    assert epochs == [1, 2, 3]  # no epoch twice


@pytest.mark.slow
def test_diagnostics_and_tracker_continue_after_sigkill(cli, tmp_path):
    args = [*SMALL, "trainer.epochs=4", "seed=0", "logger=csv"]
    killed, _ = kill_run(tmp_path, args, after_epochs=2)
    assert cli(f"resume={killed}").code == 0
    assert cli(*args, f"hydra.run.dir={tmp_path / 'whole'}").code == 0
    for name in ("diagnostics.json", "csv/metrics.csv"):
        mine = (killed / name).read_text().splitlines()
        theirs = (tmp_path / "whole" / name).read_text().splitlines()
        assert [line for line in mine if "overhead_s" not in line] == [
            line for line in theirs if "overhead_s" not in line
        ], name


@pytest.mark.slow
def test_sigint_stops_at_a_step_with_a_checkpoint_and_resume_completes(cli, tmp_path):
    args = [*SMALL, "trainer.epochs=6", "seed=1"]
    stopped, code = kill_run(tmp_path, args, after_epochs=1, sig=signal.SIGINT)
    assert code == 130
    assert summary(stopped)["status"] == "interrupted"
    state = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] >= 1 and state["step"] >= 1
    resumed = cli(f"resume={stopped}")
    assert resumed.code == 0, resumed.err
    whole = cli(*args, f"hydra.run.dir={tmp_path / 'whole'}")
    assert whole.code == 0, whole.err
    assert metrics(stopped) == metrics(tmp_path / "whole")
    best = torch.load(stopped / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == summary(stopped)["metrics"]["best"]["epoch"]


BALANCERS = [
    ["balancer=ew"],
    ["balancer=famo"],
    ["balancer=dwa"],
    ["balancer=gradvac"],
    ["balancer=nash_mtl", "balancer.update_every=5"],
    ["balancer=sdmgrad"],
    # entry epochs fixed (stagger=1): with stagger=auto they spread over trainer.epochs, decided at the start
    ["schedule=curriculum", "schedule.stagger=1", "schedule.warmup_steps=3", "schedule.ramp_epochs=2"],
    ["balancer=uw", "logger=csv"],
]


@pytest.mark.slow
@pytest.mark.parametrize("choice", BALANCERS, ids=lambda c: c[0])
def test_extending_a_run_equals_training_it_longer(cli, tmp_path, choice):
    """Train 2 epochs, resume to 4 (the state after epoch 2 is all that is carried over)."""
    base = [*SMALL, *choice, "seed=2"]
    short = cli(*base, "trainer.epochs=2", f"hydra.run.dir={tmp_path / 'a'}")
    assert short.code == 0, short.err
    more = cli(f"resume={tmp_path / 'a'}", "trainer.epochs=4")
    assert more.code == 0, more.err
    whole = cli(*base, "trainer.epochs=4", f"hydra.run.dir={tmp_path / 'b'}")
    assert whole.code == 0, whole.err
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


@pytest.mark.slow
@pytest.mark.parametrize(
    "choice", [["balancer=famo"], ["balancer=nash_mtl", "balancer.update_every=5"], ["schedule=curriculum"]], ids=str
)
def test_sigkill_at_several_points(cli, tmp_path, choice):
    """Killed during epoch 1, then killed again at once after the resume's first checkpoint write,
    then resumed to the end: still the uninterrupted run's metrics."""
    args = [*SMALL, *choice, "trainer.epochs=5", "seed=3"]
    folder = tmp_path / "killed"
    proc = start([*args, f"hydra.run.dir={folder}"], tmp_path)
    deadline = time.monotonic() + 120
    while not (folder / "checkpoints").is_dir() and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()  # at the first checkpoint write (or just after it)
    proc.wait()
    proc = start([f"resume={folder}"], tmp_path)
    wait_for_epochs(folder, 3, proc)
    proc.kill()
    proc.wait()
    assert cli(f"resume={folder}").code == 0
    whole = cli(*args, f"hydra.run.dir={tmp_path / 'whole'}")
    assert whole.code == 0, whole.err
    assert metrics(folder) == metrics(tmp_path / "whole")


def test_resume_refuses_other_overrides_and_folders_that_are_not_runs(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli(f"resume={tmp_path / 'empty'}")
    assert result.code == 2 and "is not a run or sweep folder" in result.err
    assert len(result.err.strip().splitlines()) == 1
    result = cli(f"resume={tmp_path / 'nope'}")
    assert result.code == 2 and "no such folder" in result.err
    with pytest.raises(ConfigError, match="only overrides it takes are trainer.epochs"):
        rewrite_argv([f"resume={tmp_path}", "trainer.lr=1"])


def test_rewritten_command_line_replays_the_saved_overrides(tmp_path):
    run = tmp_path / "run dir"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- seed=3\n- trainer.epochs=2\n")
    (run / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  mode: RUN\n  overrides:\n    hydra: [hydra.mode=RUN, hydra.run.dir=x]\n"
        "    task: [seed=3, trainer.epochs=2, resume=old]\n"
    )
    where = quoted(str(run.resolve()))
    assert rewrite_argv([f"resume={run}"]) == (
        ["seed=3", "trainer.epochs=2", "hydra.mode=RUN", f"hydra.run.dir={where}"],
        run.resolve(),
    )  # resume= itself is handed over beside the command line, never as an override Hydra records
    assert rewrite_argv([f"resume={run}", "trainer.epochs=9"])[0][:2] == ["seed=3", "trainer.epochs=9"]
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  mode: MULTIRUN\n  overrides:\n    hydra: [hydra.mode=MULTIRUN]\n    task:\n    - seed=0,1\n"
    )
    argv, folder = rewrite_argv([f"resume={sweep}"])
    assert folder == sweep.resolve() and not any(a.startswith("resume=") for a in argv)
    assert argv[0] == "-m" and "seed=0,1" in argv and f"hydra.sweep.dir={quoted(str(sweep.resolve()))}" in argv


def test_resume_refuses_a_changed_config_and_says_so_on_one_line(cli, tmp_path):
    run = tmp_path / "r"
    first = cli(*SMALL, "trainer.epochs=1", f"hydra.run.dir={run}")
    assert first.code == 0, first.err
    (run / ".hydra" / "hydra.yaml").write_text(
        (run / ".hydra" / "hydra.yaml").read_text().replace("- trainer.epochs=1", "- trainer.epochs=1\n    - seed=9")
    )
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    result = cli(f"resume={run}")
    assert result.code == 2 and "differs in 'seed'" in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # refused before any write


def test_a_completed_run_has_nothing_to_resume_and_the_guard_names_resume(cli, tmp_path):
    run = tmp_path / "r"
    assert cli(*SMALL, "trainer.epochs=1", f"hydra.run.dir={run}").code == 0
    before = (run / "summary.json").read_text()
    result = cli(f"resume={run}")
    assert result.code == 0 and "run folder:" in result.out
    assert (run / "summary.json").read_text() == before
    refused = cli(*SMALL, f"hydra.run.dir={run}")
    assert refused.code == 2 and f"resume={run}" in refused.err


def files_of(folder):
    """Every file under ``folder`` with its bytes (and the set of paths, so a new file shows too)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_refused_or_idle_resume_leaves_the_folder_byte_identical(cli, tmp_path):
    run = tmp_path / "r"
    assert cli(*SMALL, "trainer.epochs=2", f"hydra.run.dir={run}").code == 0
    before = files_of(run)
    fewer = cli(f"resume={run}", "trainer.epochs=1")
    assert fewer.code == 2 and "fewer than the 2 epochs" in fewer.err and len(fewer.err.strip().splitlines()) == 1
    assert files_of(run) == before
    extra = cli(f"resume={run}", "arch=mmoe")
    assert extra.code == 2 and files_of(run) == before
    done = cli(f"resume={run}")
    assert done.code == 0 and "nothing to resume" in done.out + done.err
    assert files_of(run) == before
    checkpoint = run / "checkpoints" / "last.pt"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[:1000])  # damaged
    damaged = files_of(run)
    broken = cli(f"resume={run}", "trainer.epochs=3")
    assert broken.code == 2 and "last.pt" in broken.err and len(broken.err.strip().splitlines()) == 1
    assert files_of(run) == damaged
    checkpoint.write_bytes(good)
    longer = cli(f"resume={run}", "trainer.epochs=3")  # a later plain resume still works
    assert longer.code == 0, longer.err
    assert summary(run)["epochs_completed"] == 3
    recorded = (run / ".hydra" / "overrides.yaml").read_text() + (run / ".hydra" / "config.yaml").read_text()
    assert "resume" not in recorded and "trainer.epochs=3" in recorded


@pytest.mark.slow
def test_sweep_resume_skips_completed_jobs_continues_the_others_and_runs_missing_ones(cli, tmp_path):
    sweep = tmp_path / "sweep"
    small = [*SMALL, "dataset.num_samples=400", "diagnostics.every=0"]
    first = cli("-m", *small, "trainer.epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert first.code == 0, first.err
    import shutil

    shutil.rmtree(sweep / "1")  # a job the sweep never got to
    extended = cli(f"resume={sweep}", "trainer.epochs=2")
    assert extended.code == 0, extended.err
    resumed = summary(sweep / "0")["resumed_after"]
    assert len(resumed) == 1 and resumed[0]["epoch"] == 1 and summary(sweep / "0")["epochs_completed"] == 2
    assert summary(sweep / "1")["resumed_after"] == [] and summary(sweep / "1")["epochs_completed"] == 2
    pooled = json.loads((sweep / "sweep_summary.json").read_text())
    assert pooled["sweep_dir"] == str(sweep) and '"epochs": 2' not in json.dumps(pooled.get("problems", []))
    before = {job: (sweep / job / "summary.json").read_text() for job in ("0", "1")}
    again = cli("-m", f"resume={sweep}")
    assert again.code == 0, again.err
    assert {job: (sweep / job / "summary.json").read_text() for job in ("0", "1")} == before


@pytest.mark.slow
def test_a_submitit_sweep_resumes_with_its_own_launcher(cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    small = [*SMALL, "dataset.num_samples=400", "diagnostics.every=0"]
    first = cli("-m", "hydra/launcher=submitit_local", *small, "trainer.epochs=1", "seed=0", f"hydra.sweep.dir={sweep}")
    assert first.code == 0, first.err
    more = cli(f"resume={sweep}", "trainer.epochs=2")
    assert more.code == 0, more.err
    assert (sweep / ".submitit").is_dir()
    job = summary(sweep / "0")
    assert job["epochs_completed"] == 2 and job["resumed_after"][0]["epoch"] == 1


@pytest.mark.slow
def test_a_second_signal_stops_at_once_and_leaves_only_complete_files(tmp_path):
    folder = tmp_path / "twice"
    proc = start([*SMALL, "trainer.epochs=50", f"hydra.run.dir={folder}"], tmp_path)
    try:
        wait_for_epochs(folder, 1, proc)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 143
    assert not list(folder.rglob("*.tmp"))
    json.loads((folder / "summary.json").read_text())  # complete JSON, whichever version
    torch.load(folder / "checkpoints" / "last.pt", weights_only=True)

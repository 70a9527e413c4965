"""Data parallel (``mtlrun.train.distributed``): two gloo processes compute the same update as one
process with the whole global batch, for every family of balancer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.train.dp_helpers import DIGITS, SYNTHETIC, run_ranks, train_steps

#: the balancers of each family whose two-process parameters must equal one process's
EXACT = {
    "ew": SYNTHETIC + ["balancer=ew"],
    "uw": SYNTHETIC + ["balancer=uw"],
    "famo": SYNTHETIC + ["balancer=famo"],
    "mgda": SYNTHETIC + ["balancer=mgda"],
    "pcgrad": SYNTHETIC + ["balancer=pcgrad"],
    "cagrad": SYNTHETIC + ["balancer=cagrad"],
    "nash_mtl": SYNTHETIC + ["balancer=nash_mtl"],
    "upgrad": SYNTHETIC + ["balancer=upgrad"],
    "modo": SYNTHETIC + ["balancer=modo"],  # three batches per step
    "mgda_rep": SYNTHETIC + ["balancer=mgda", "balancer.rep_grad=true"],
    # batch norm over the global batch; with SGD, as Adam turns the rounding noise of the conv biases
    # before batch norm (whose exact gradient is 0) into steps of the full learning rate
    "pcgrad_bn": DIGITS + ["balancer=pcgrad", "trainer.optimizer=sgd"],
}
STEPS = 3
ROOT = Path(__file__).resolve().parents[2]
#: one of each family in the fast suite: loss weighting, gradient method, multi-batch, batch norm
FAST = ("uw", "pcgrad", "modo", "pcgrad_bn")


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def check_same_update(names: tuple[str, ...], tmp_path: Path) -> None:
    runs = {name: EXACT[name] for name in names}
    two = run_ranks(runs, STEPS, 2, tmp_path)
    for name, overrides in runs.items():
        start, one = train_steps(overrides, STEPS)
        assert relative(one, start) > 1e-4, f"{name}: the steps must move the parameters"
        assert relative(two[name], one) < 1e-5, name


def test_two_processes_match_one_process(tmp_path: Path) -> None:
    check_same_update(FAST, tmp_path)


@pytest.mark.slow
def test_every_family_matches_one_process(tmp_path: Path) -> None:
    check_same_update(tuple(name for name in EXACT if name not in FAST), tmp_path)


# ---- the command: the launcher, torchrun, resume, a failing rank ----

SMALL = [
    "dataset=synthetic",
    "dataset.num_samples=400",
    "dataset.input_dim=6",
    "trainer.batch_size=32",
    "trainer.device=cpu",
    "report.baselines=false",
    "diagnostics.every=5",
]


def mtlrun(args: list[str], cwd: Path, timeout: float = 240, module: list[str] | None = None) -> Any:
    exe = [sys.executable, *(module or ["-m", "mtlrun"])]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [*exe, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        raise
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    done.pid = proc.pid  # type: ignore[attr-defined]  # its own session: the ranks' process group
    return done


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def close_metrics(a: dict, b: dict, tol: float = 1e-4) -> None:
    for which in ("last", "best"):
        for task, values in a[which]["test"].items():
            for name, value in values.items():
                assert abs(value - b[which]["test"][task][name]) <= tol * max(1.0, abs(value)), (which, task, name)


@pytest.mark.slow
def test_launcher_resume_and_one_writer(tmp_path: Path) -> None:
    one = mtlrun([*SMALL, "trainer.epochs=2", f"hydra.run.dir={tmp_path / 'one'}"], tmp_path)
    assert one.returncode == 0, one.stderr
    first = mtlrun([*SMALL, "trainer.devices=2", "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'two'}"], tmp_path)
    assert first.returncode == 0, first.stderr
    again = mtlrun([f"resume={tmp_path / 'two'}", "trainer.epochs=2", "trainer.devices=2"], tmp_path)
    assert again.returncode == 0, again.stderr
    two = tmp_path / "two"
    assert summary(two)["status"] == "completed" and summary(two)["resumed_after"][0]["epoch"] == 1
    close_metrics(summary(tmp_path / "one")["metrics"], summary(two)["metrics"])
    # written once, by rank 0: as many metric rows as one process writes, one start line per launch
    rows = (tmp_path / "one" / "metrics.jsonl").read_text().count("\n")
    assert (two / "metrics.jsonl").read_text().count("\n") == rows
    assert (two / "run.log").read_text().count("training hps on synthetic") == 2  # two launches, rank 0 only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]


@pytest.mark.slow
def test_torchrun_starts_the_ranks(tmp_path: Path) -> None:
    done = mtlrun(
        ["--nproc_per_node=2", "-m", "mtlrun", *SMALL, "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'run'}"],
        tmp_path,
        module=["-m", "torch.distributed.run"],
    )
    assert done.returncode == 0, done.stderr
    assert summary(tmp_path / "run")["status"] == "completed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the other rank wrote nowhere
    assert mtlrun([*SMALL, "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'one'}"], tmp_path).returncode == 0
    close_metrics(summary(tmp_path / "one")["metrics"], summary(tmp_path / "run")["metrics"])


@pytest.mark.slow
def test_a_failing_rank_ends_every_rank(tmp_path: Path) -> None:
    started = time.monotonic()
    failed = mtlrun(
        [*SMALL, "trainer.devices=2", "trainer.epochs=2", "balancer._target_=tests.train.dp_helpers.FailOnRank1",
         f"hydra.run.dir={tmp_path / 'run'}"],
        tmp_path,
        timeout=180,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "rank 1 failed" in failed.stderr and "injected failure on rank 1" in failed.stderr
    assert summary(tmp_path / "run")["status"] == "failed"
    assert time.monotonic() - started < 120
    deadline = time.monotonic() + 20  # the ranks are ended: nothing of the command's session lingers
    while subprocess.run(["pgrep", "-g", str(failed.pid)], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "ranks left running"
        time.sleep(0.5)

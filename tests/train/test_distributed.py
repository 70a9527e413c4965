"""Data parallel (``mtlrun.train.distributed``): two gloo processes compute the same update as one
process with the whole global batch, for every family of balancer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.train.dp_helpers import DIGITS, PATCHES, SYNTHETIC, NotExact, run_ranks, train_steps

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
    "sdmgrad": SYNTHETIC + ["balancer=sdmgrad"],  # three batches per step
    # per-task gradients of their own: a norm on the last shared layer, an EMA of the Jacobian
    "gradnorm": SYNTHETIC + ["balancer=gradnorm"],
    "gradnorm_rep": SYNTHETIC + ["balancer=gradnorm", "balancer.rep_grad=true"],
    "db_mtl": SYNTHETIC + ["balancer=db_mtl"],
    # lookahead and bilevel: a validation batch (sharded), or a second training batch
    "auto_lambda": SYNTHETIC + ["balancer=auto_lambda", "balancer.weight_lr=1e-2"],
    # MGDA's min-norm point of its hypergradients is 0 up to rounding on these tasks, which Adam turns
    # into steps of up to weight_lr, different in each process: a small weight_lr bounds that noise,
    # and moml_hyper checks the hypergradients themselves
    "moml": SYNTHETIC + ["balancer=moml", "balancer.weight_lr=1e-4"],
    "moml_hyper": SYNTHETIC + ["balancer=moml", "balancer.weight_lr=1e-2"],  # under PATCHES' moml_mean_upper
    # upper_split=train, five inner steps; a rho at which the constraint is active (nu > 0) from the first step
    "forum": SYNTHETIC + ["balancer=forum", "balancer.rho=0.5", "balancer.weight_lr=0.1"],
    "mgda_rep": SYNTHETIC + ["balancer=mgda", "balancer.rep_grad=true"],
    "pcgrad_batched": SYNTHETIC + ["balancer=pcgrad", "balancer.jacobian_mode=batched"],  # one vmap backward
    # batch norm over the global batch; with SGD, as Adam turns the rounding noise of the conv biases
    # before batch norm (whose exact gradient is 0) into steps of the full learning rate
    "pcgrad_bn": DIGITS + ["balancer=pcgrad", "trainer.optimizer=sgd"],
}
STEPS = 3
ROOT = Path(__file__).resolve().parents[2]
#: one of each family in the fast suite: loss weighting, gradient method, multi-batch, batch norm,
#: per-task gradients of a method's own, lookahead on a validation batch
FAST = ("uw", "pcgrad", "modo", "pcgrad_bn", "gradnorm", "auto_lambda")


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def check_same_update(names: tuple[str, ...], tmp_path: Path) -> None:
    runs = {name: EXACT[name] for name in names}
    two = run_ranks(runs, STEPS, 2, tmp_path)
    for name, overrides in runs.items():
        with PATCHES.get(name, nullcontext)():
            start, one = train_steps(overrides, STEPS)
        assert relative(one, start) > 1e-4, f"{name}: the steps must move the parameters"
        assert relative(two[name], one) < 1e-5, name


def test_two_processes_match_one_process(tmp_path: Path) -> None:
    check_same_update(FAST, tmp_path)


@pytest.mark.slow
def test_every_family_matches_one_process(tmp_path: Path) -> None:
    check_same_update(tuple(name for name in EXACT if name not in FAST), tmp_path)


def test_average_weights_is_plain_ddp_traffic_and_keeps_ranks_together(tmp_path: Path) -> None:
    """The approximate option sends P + H + 3T floats, not T x P, and every rank steps alike."""
    runs = {"avg": SYNTHETIC + ["balancer=pcgrad", "trainer.data_parallel=average_weights"]}
    found = run_ranks(runs, STEPS, 2, tmp_path, every_rank=True)
    (p0, b0), (p1, b1) = found[0]["avg"], found[1]["avg"]
    assert torch.equal(p0, p1) and b0 == b1
    params = p0.numel()
    assert b0 < 1.1 * 4 * params * STEPS  # about one gradient per step (plain DDP)


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


# ---- the pieces, in one process ----


def test_shards_are_disjoint_and_cover_the_batch() -> None:
    from mtlrun.train.distributed import DataParallel, ProcessEnv

    for n in (1, 7, 18, 128):
        for world in (2, 3):
            parts = [DataParallel(ProcessEnv(r, world, r, world), torch.device("cpu")).bounds(n) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1


def test_the_failing_rank_is_named_not_the_peer_it_took_down(tmp_path: Path) -> None:
    from mtlrun.cli.ranks import first_cause

    (tmp_path / "rank-0.error").write_text("10.5\tRuntimeError: [pair.cc:537] Read error: Connection reset by peer")
    (tmp_path / "rank-1.error").write_text("10.7\tValueError: bad batch")
    assert first_cause(tmp_path, None) == "rank 1 failed: ValueError: bad batch"


def test_settings_that_cannot_work_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from mtlrun.balancers import BALANCERS
    from mtlrun.errors import ConfigError
    from mtlrun.train import distributed

    for key in ("RANK", "WORLD_SIZE", "SLURM_NTASKS", "MTLRUN_SLURM_DDP"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.wants_launch(2, 1) and not distributed.wants_launch(1, 1)
    with pytest.raises(ConfigError, match="trainer.nodes=2 needs one mtlrun per device on every node"):
        distributed.wants_launch(1, 2)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not distributed.wants_launch(2, 1)  # started by torchrun: this process is a rank
    with pytest.raises(ConfigError, match=r"trainer.devices=3 x trainer.nodes=1 does not match the 2 processes"):
        distributed.check_world(3, 1)
    refused = NotExact(["a", "b"])
    with pytest.raises(ConfigError, match="balancer=not_exact takes per-task gradients of its own.*pcgrad"):
        distributed.check_balancer(refused, "not_exact")
    assert all(getattr(BALANCERS.get(n), "data_parallel_exact", True) for n in BALANCERS.names())


def test_a_rank_other_than_0_composes_into_a_scratch_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from mtlrun.cli.main import follower_overrides

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = follower_overrides(["seed=1", "hydra.run.dir=outputs/x"])
    assert "seed=1" in args and "hydra.run.dir=outputs/x" not in args and "hydra.output_subdir=null" in args
    monkeypatch.setenv("RANK", "0")
    assert follower_overrides(["seed=1"]) == ["seed=1"]


def test_slurm_ddp_preset_takes_its_shape_from_the_trainer() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_module

    from mtlrun.config.schema import register_schema

    register_schema()
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        cfg = compose(
            "config",
            overrides=["hydra/launcher=slurm_ddp", "trainer.devices=4", "trainer.nodes=2"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_task) == (2, 4, 1)
    assert "export MTLRUN_SLURM_DDP=1" in launcher.setup

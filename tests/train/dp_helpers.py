"""Helpers of the data-parallel tests: a few training steps in one process or on each rank of a
gloo group, and a balancer that fails on one rank."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from unittest.mock import patch

import torch
from torch import Tensor

from mtlrun.balancers.base import LossWeighting, StepContext
from mtlrun.balancers.moml import MOML

#: tiny: an MLP on synthetic data, or the default CNN (batch norm) on a slice of multi_digits
SYNTHETIC = ["dataset=synthetic", "dataset.num_samples=200", "dataset.input_dim=6", "dataset.num_tasks=3"]
DIGITS = ["dataset=multi_digits", "encoder=cnn"]
COMMON = ["trainer.device=cpu", "trainer.batch_size=18", "report.baselines=false", "diagnostics.every=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train_steps(overrides: list[str], steps: int) -> tuple[Tensor, Tensor]:
    """The model's parameters (flat) before and after ``steps`` steps of the run ``overrides`` configure, in
    this process, data parallel when this process is a rank of a started group."""
    from mtlrun.api.hydra_app import compose
    from mtlrun.train.stepping import stepping_trainer

    trainer, c = stepping_trainer(compose([*COMMON, *overrides]))
    start = torch.cat([p.detach().reshape(-1) for p in c.model.parameters()]).clone()
    for i, group in enumerate(trainer._grouped_batches()):
        if i == steps:
            break
        trainer.training_step(group, 1, trainer.optimizer.param_groups[0]["lr"])
    return start, torch.cat([p.detach().reshape(-1) for p in c.model.parameters()])


def rank_main(rank: int, world: int, port: int, runs: dict[str, list[str]], steps: int, out: str) -> None:
    """One rank: join the gloo group, train each of ``runs`` for ``steps`` steps; save the
    parameters and the bytes this rank all-reduced to ``out`` (one file per rank)."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    from mtlrun.train import distributed

    dp = distributed.join(torch.device("cpu"))
    try:
        result = {}
        for name, overrides in runs.items():
            before = dp.bytes_reduced
            with PATCHES.get(name, nullcontext)():
                params = train_steps(overrides, steps)[1]
            result[name] = (params, dp.bytes_reduced - before)
        torch.save(result, f"{out}.{rank}")
    finally:
        distributed.leave()


def run_ranks(runs: dict[str, list[str]], steps: int, world: int, tmp: Path, every_rank: bool = False) -> Any:
    """:func:`rank_main` on ``world`` spawned processes: rank 0's parameters per run, or with
    ``every_rank`` each rank's ``{run: (parameters, bytes all-reduced)}``."""
    import torch.multiprocessing as mp

    out = str(tmp / "params.pt")
    mp.spawn(rank_main, args=(world, free_port(), runs, steps, out), nprocs=world, join=True)
    found = [torch.load(f"{out}.{rank}") for rank in range(world)]
    if every_rank:
        return found
    return {name: params for name, (params, _) in found[0].items()}


class FailOnRank1(LossWeighting):
    """Equal weights that raise on rank 1 at step ``at`` (the failure tests)."""

    def __init__(self, tasks: list[str], at: int = 2) -> None:
        super().__init__(tasks)
        self.at = at

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        import torch.distributed as dist

        if dist.is_initialized() and dist.get_rank() == 1 and ctx.step >= self.at:
            raise RuntimeError("injected failure on rank 1")
        return torch.ones_like(losses)


class NotExact(LossWeighting):
    """Equal weights from a method that says it is not exact across ranks (a plugin's refusal)."""

    data_parallel_exact = False

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        return torch.ones_like(losses)


def mean_upper_direction(self: MOML, hyper: Tensor, info: Any, rows: Tensor | None = None) -> Tensor:
    """MOML's logits along the mean of the upper-level hypergradients instead of their min-norm point."""
    return (hyper if rows is None else hyper[rows]).mean(dim=0)


@contextmanager
def moml_mean_upper() -> Iterator[None]:
    """On these tasks MOML's min-norm point of the hypergradients is 0 up to rounding (each task's
    own weight helps it most), which Adam turns into steps of the full ``weight_lr``: only a smooth
    combination shows whether the hypergradients themselves are the single-process ones."""
    with patch.object(MOML, "upper_direction", mean_upper_direction):
        yield


#: runs trained under a patch (the same in one process and on every rank), by name
PATCHES: dict[str, Callable[[], AbstractContextManager[None]]] = {"moml_hyper": moml_mean_upper}

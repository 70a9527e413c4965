"""Data parallel (``mtlrun.train.distributed``): two gloo processes compute the same update as one
process with the whole global batch, for every family of balancer."""

from __future__ import annotations

from pathlib import Path

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

"""Smooth Tchebycheff scalarisation (``stch``): a smooth max of the normalised task losses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, StepContext, expand_present, present_rows
from mtlrun.errors import ConfigError
from mtlrun.registry import positive

#: keeps the logarithms finite, as in the official code
EPS = 1e-20


def smooth_tchebycheff(values: Tensor, mu: float) -> Tensor:
    """``mu * log sum_t exp(values_t / mu)``: a smooth upper bound of ``max_t values_t``.

    It lies in ``[max, max + mu log T]`` and tends to the max as ``mu -> 0``; its gradient is
    ``softmax(values / mu)``.
    """
    return mu * torch.logsumexp(values / mu, dim=0)


@BALANCERS.register("stch")
class SmoothTchebycheff(Balancer):
    """Smooth Tchebycheff scalarisation (Lin, Zhang, Yang, Liu, Wang & Zhang, ICML 2024), as in its MTL code.

    Epochs ``1..warmup_epochs`` train on ``sum_t log L_t``. Epoch ``warmup_epochs + 1`` trains the same way
    and averages the task losses into the nadir point ``N_t``. Every later epoch minimises

        T * mu * log sum_t exp(f_t / mu),   f_t = log(L_t / N_t)

    i.e. the smooth Tchebycheff value of the nadir-normalised log losses with equal preferences and the
    ideal point at 0 in that space (each f_t < 0 once task t beats its nadir), times T as in the official
    code. The reported weights are those on the (normalised) log losses: 1 each during warm-up and
    ``T * softmax(f / mu)`` afterwards, so they sum to T throughout. The nadir point and its running sum
    are buffers; the epoch bookkeeping is extra state, so checkpoints resume it. A task without labels in a
    batch (``ctx.present``) is left out of that step's objective and of the nadir average (its log is
    never taken).
    """

    def __init__(self, tasks: Sequence[str], mu: float = 1.0, warmup_epochs: int = 4) -> None:
        super().__init__(tasks)
        positive("balancer", mu=mu)
        if warmup_epochs < 0:
            raise ConfigError(f"balancer.warmup_epochs={warmup_epochs} must be >= 0")
        self.mu, self.warmup_epochs = mu, warmup_epochs
        self.register_buffer("nadir_sum", torch.zeros(self.num_tasks))
        self.register_buffer("nadir", torch.ones(self.num_tasks))
        #: steps of the nadir epoch on which each task had labels
        self.register_buffer("nadir_count", torch.zeros(self.num_tasks))
        self._nadir_steps = 0
        self._has_nadir = False

    def context_needs(self) -> dict[str, str]:
        return {"epoch": "its warm-up and its nadir point are counted in epochs"}

    def returns_jacobian(self, step: int) -> bool:
        return False  # one backward of a scalar

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        rows = present_rows(ctx.present)
        if ctx.epoch <= self.warmup_epochs + 1:
            if ctx.epoch == self.warmup_epochs + 1:
                self.nadir_sum += stacked.detach().to(self.nadir_sum)
                self.nadir_count += 1.0 if ctx.present is None else ctx.present.to(self.nadir_count)
                self._nadir_steps += 1
            logs = torch.log(stacked + EPS)
            (logs if rows is None else logs[rows]).sum().backward()
            weights = torch.ones_like(stacked) if ctx.present is None else ctx.present.to(stacked)
            return BalanceInfo(weights=weights.detach())
        if not self._has_nadir:
            if self._nadir_steps:
                count = self.nadir_count
                self.nadir.copy_(torch.where(count > 0, self.nadir_sum / count.clamp_min(1.0), self.nadir))
            else:  # resumed past the nadir epoch without one: the current losses stand in
                self.nadir.copy_(stacked.detach())
            self._has_nadir = True
        normalised = torch.log(stacked / self.nadir.to(stacked) + EPS)
        if rows is not None:
            normalised = normalised[rows]
        (self.num_tasks * smooth_tchebycheff(normalised, self.mu)).backward()
        weights = self.num_tasks * torch.softmax(normalised.detach() / self.mu, dim=0)
        return BalanceInfo(weights=expand_present(weights, ctx.present, self.num_tasks))

    def get_extra_state(self) -> dict[str, Any]:
        return {"nadir_steps": self._nadir_steps, "has_nadir": self._has_nadir}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._nadir_steps = int(state["nadir_steps"])
        self._has_nadir = bool(state["has_nadir"])

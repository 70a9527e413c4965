"""Smooth Tchebycheff scalarisation (``stch``): a smooth max of the normalised task losses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, StepContext
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
    are buffers; the epoch bookkeeping is extra state, so checkpoints resume it.
    """

    def __init__(self, tasks: Sequence[str], mu: float = 1.0, warmup_epochs: int = 4) -> None:
        super().__init__(tasks)
        positive("balancer", mu=mu)
        if warmup_epochs < 0:
            raise ConfigError(f"balancer.warmup_epochs={warmup_epochs} must be >= 0")
        self.mu, self.warmup_epochs = mu, warmup_epochs
        self.register_buffer("nadir_sum", torch.zeros(self.num_tasks))
        self.register_buffer("nadir", torch.ones(self.num_tasks))
        self._nadir_steps = 0
        self._has_nadir = False

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        if ctx.epoch <= self.warmup_epochs + 1:
            if ctx.epoch == self.warmup_epochs + 1:
                self.nadir_sum += stacked.detach().to(self.nadir_sum)
                self._nadir_steps += 1
            torch.log(stacked + EPS).sum().backward()
            return BalanceInfo(weights=torch.ones_like(stacked).detach())
        if not self._has_nadir:
            if self._nadir_steps:
                self.nadir.copy_(self.nadir_sum / self._nadir_steps)
            else:  # resumed past the nadir epoch without one: the current losses stand in
                self.nadir.copy_(stacked.detach())
            self._has_nadir = True
        normalised = torch.log(stacked / self.nadir.to(stacked) + EPS)
        (self.num_tasks * smooth_tchebycheff(normalised, self.mu)).backward()
        weights = self.num_tasks * torch.softmax(normalised.detach() / self.mu, dim=0)
        return BalanceInfo(weights=weights)

    def get_extra_state(self) -> dict[str, Any]:
        return {"nadir_steps": self._nadir_steps, "has_nadir": self._has_nadir}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._nadir_steps = int(state["nadir_steps"])
        self._has_nadir = bool(state["has_nadir"])

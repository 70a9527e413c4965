"""Geometric loss strategy (``gls``): minimise the geometric mean of the task losses."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, LossWeighting, StepContext


@BALANCERS.register("gls")
class GeometricLossStrategy(LossWeighting):
    """Geometric loss strategy (Chennupati, Sistu, Yogamani & Rawashdeh, CVPR Workshops 2019).

    The objective is ``G = (prod_t L_t)^(1/T)``, computed as ``exp(mean_t log L_t)`` so that many small
    losses do not underflow. Its gradient is ``(G / T) sum_t grad L_t / L_t``: every task is weighted by
    the inverse of its own loss, which makes the update invariant to each loss's scale. The reported
    weights are these effective weights ``G / (T L_t)``. A loss of exactly zero is clamped to the
    smallest positive float (its gradient is then zero rather than NaN). On a batch where some tasks have
    no labels (``ctx.present``), the mean is over the present tasks and the absent ones get weight 0.
    """

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        safe = losses.detach().clamp_min(torch.finfo(losses.dtype).tiny)
        if ctx.present is None:
            return torch.exp(safe.log().mean()) / (self.num_tasks * safe)
        mask = ctx.present.to(safe)
        count = mask.sum().clamp_min(1.0)
        return mask * torch.exp((mask * safe.log()).sum() / count) / (count * safe)

    def objective(self, losses: Tensor, weights: Tensor, ctx: StepContext) -> Tensor:
        logs = losses.clamp_min(torch.finfo(losses.dtype).tiny).log()
        if ctx.present is None:
            return torch.exp(logs.mean())
        mask = ctx.present.to(logs)  # the geometric mean of the present tasks' losses
        return torch.exp((mask * logs).sum() / mask.sum().clamp_min(1.0))

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
    smallest positive float (its gradient is then zero rather than NaN).
    """

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        safe = losses.detach().clamp_min(torch.finfo(losses.dtype).tiny)
        return torch.exp(safe.log().mean()) / (self.num_tasks * safe)

    def objective(self, losses: Tensor, weights: Tensor) -> Tensor:
        return torch.exp(losses.clamp_min(torch.finfo(losses.dtype).tiny).log().mean())

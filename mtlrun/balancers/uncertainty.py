"""Uncertainty weighting (``uw``): task weights from learned homoscedastic noise."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlrun.balancers.base import BALANCERS, LossWeighting, StepContext
from mtlrun.errors import ConfigError


@BALANCERS.register("uw")
class UncertaintyWeighting(LossWeighting):
    """Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    Each task has a learnable log-variance ``s_t = log sigma_t^2`` (an ``nn.Parameter``, so the trainer's
    optimiser trains it with the model). The objective is

        sum_t exp(-s_t) L_t + s_t

    i.e. the paper's Eq. (7) with ``s = log sigma^2`` and the factor 1/2 dropped (LibMTL keeps it: that
    only halves the gradient). For a fixed loss L_t it is minimised at ``s_t = log L_t``, so the effective
    weight ``exp(-s_t)`` tends to ``1 / L_t``. ``init_log_variance=0`` starts from equal weights. A task
    without labels in a batch (``ctx.present``) drops out of the objective, regulariser included.
    """

    def __init__(self, tasks: Sequence[str], init_log_variance: float = 0.0) -> None:
        super().__init__(tasks)
        if not math.isfinite(init_log_variance):
            raise ConfigError(f"balancer.init_log_variance={init_log_variance} must be a finite number")
        self.log_variances = nn.Parameter(torch.full((self.num_tasks,), float(init_log_variance)))

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        return torch.exp(-self.log_variances).to(losses.dtype)

    def objective(self, losses: Tensor, weights: Tensor, ctx: StepContext) -> Tensor:
        terms = weights * losses + self.log_variances.to(losses.dtype)
        if ctx.present is None:
            return terms.sum()
        return (terms * ctx.present.to(terms)).sum()  # an absent task's log-variance does not move

"""Two balancers: one weighting the losses, one combining the task gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor

from mtlrun.balancers import GradientAggregator, LossWeighting, StepContext
from mtlrun.config.ranges import Range


class LossBalancedTaskWeighting(LossWeighting):
    """Loss-balanced task weighting, LBTW (Liu, Liang and Gitter, AAAI 2019).

    ``w_t = (L_t / L_t(0)) ** alpha`` at every step, with ``L_t(0)`` the task's loss at the first
    step it had labels: a task whose loss has dropped a lot (learned, or over-fitting) gets less
    weight. ``alpha = 0`` is equal weighting. The initial losses are a buffer, so a resumed run
    continues with them.
    """

    def __init__(self, tasks: Sequence[str], alpha: Annotated[float, Range(ge=0)] = 0.5) -> None:
        super().__init__(tasks)
        self.alpha = alpha
        self.register_buffer("initial", torch.full((len(self.tasks),), float("nan")))

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        losses = losses.detach()
        present = ctx.present if ctx.present is not None else torch.ones_like(losses, dtype=torch.bool)
        first = torch.isnan(self.initial) & present & (losses > 0)
        self.initial = torch.where(first, losses, self.initial)
        ratio = torch.where(torch.isnan(self.initial), torch.ones_like(losses), losses / self.initial)
        return ratio.clamp_min(0) ** self.alpha


class AndMask(GradientAggregator):
    """The AND-mask (Parascandolo et al., "Learning explanations that are hard to vary", ICLR 2021).

    Keeps only the coordinates on which the task gradients agree in sign and averages the tasks
    there: ``d = m * mean_t g_t`` with ``m_j = 1[|mean_t sign(g_tj)| >= agreement]``. With
    ``scale_inverse_sparsity`` the update is divided by the fraction of coordinates kept, as in
    the authors' code. It returns an update direction, not task weights.
    """

    output = "direction"

    def __init__(
        self,
        tasks: Sequence[str],
        agreement: Annotated[float, Range(ge=0, le=1)] = 1.0,
        scale_inverse_sparsity: bool = False,
        rep_grad: bool = False,
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad)
        self.agreement = agreement
        self.scale_inverse_sparsity = scale_inverse_sparsity

    def direction(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        mask = (torch.sign(jacobian).mean(dim=0).abs() >= self.agreement).to(jacobian.dtype)
        update = mask * jacobian.mean(dim=0)
        if self.scale_inverse_sparsity:
            update = update / (mask.mean() + 1e-10)
        return update

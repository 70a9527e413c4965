"""LDC-MTL (``ldc_mtl``): learned loss weights with a penalty on the weighted-loss discrepancy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlrun.balancers.base import BALANCERS, LossWeighting, StepContext, present_rows
from mtlrun.errors import ConfigError


@BALANCERS.register("ldc_mtl")
class LDCMTL(LossWeighting):
    """LDC-MTL (Xiao, Dong, Zou & Ji, 2025, "LDC-MTL: Balancing Multi-Task Learning through Scalable Loss
    Discrepancy Control", arXiv:2502.08585).

    A bilevel problem: the upper level chooses task weights ``w = sigmoid(W)`` that make the weighted,
    normalised losses equal; the lower level trains the model on the weighted loss. Its penalty
    reformulation is solved by one first-order step on the model and on ``W`` together, of

        sum_t w_t l_t / sg(sum_s w_s)  +  lambda sum_t |w_t l_t - w_{t+1} l_{t+1}|,   l_t = L_t / r_t,

    (sg: no gradient), the objective of the authors' code; ``r_t = L_t(0) / min_s L_s(0)`` are the loss
    ratios of the first step (the paper's coarse loss pre-normalisation, ``loss_ratios=true``; false:
    ``r = 1``). ``W`` is an ``nn.Parameter``, trained by the run's optimiser with the model (the weighting
    network of their CelebA code: a learned vector through a sigmoid, ``init_logit=1``); one backward, so
    the method costs what ``ew`` costs. ``lam`` is lambda (0.01 in their CelebA script). The reported weights are the
    effective ones, the objective's derivative with respect to each raw loss.

    Their NYUv2 model feeds pooled task features to a linear layer instead of a learned vector; mtlrun's
    architectures do not expose per-task features to a balancer, so the vector form is implemented.

    A task without labels in a batch (``ctx.present``) is left out: the weighted sum and the chain of
    discrepancies run over the present tasks in task order, its logit gets no gradient, and its loss
    ratio is fixed at the first step where it is present.
    """

    def __init__(
        self, tasks: Sequence[str], lam: float = 0.01, loss_ratios: bool = True, init_logit: float = 1.0
    ) -> None:
        super().__init__(tasks)
        if not lam >= 0:
            raise ConfigError(f"balancer.lam={lam} must be >= 0")
        if not math.isfinite(init_logit):
            raise ConfigError(f"balancer.init_logit={init_logit} must be a finite number")
        self.lam, self.loss_ratios = lam, loss_ratios
        self.logits = nn.Parameter(torch.full((self.num_tasks,), float(init_logit)))
        #: each task's loss at the first step it was present (0: not seen yet)
        self.register_buffer("initial_losses", torch.zeros(self.num_tasks))
        self._ratios = torch.ones(self.num_tasks)

    def ratios(self, losses: Tensor, rows: Tensor | None) -> Tensor:
        """``r_t`` of the present tasks, recording the initial losses not seen before."""
        if not self.loss_ratios:
            return torch.ones_like(losses)
        current = losses.detach().to(self.initial_losses)
        unseen = self.initial_losses == 0
        if rows is not None:
            mask = torch.zeros_like(unseen)
            mask[rows] = True
            unseen = unseen & mask
        self.initial_losses.copy_(torch.where(unseen, current, self.initial_losses))
        seen = self.initial_losses[self.initial_losses > 0]
        if seen.numel() == 0:  # every loss so far is exactly 0: nothing to normalise
            return torch.ones_like(losses)
        ratios = self.initial_losses / seen.min()
        return torch.where(ratios > 0, ratios, torch.ones_like(ratios)).to(losses)

    def scalarise(self, losses: Tensor, ratios: Tensor, present: Tensor | None) -> Tensor:
        """The objective above, differentiable in the losses and in ``W``."""
        w = torch.sigmoid(self.logits).to(losses)
        rows = present_rows(present)
        normalised = losses / ratios
        if rows is not None:
            w, normalised = w[rows], normalised[rows]
        if w.numel() == 0:
            return (losses * 0.0).sum()
        weighted = w * normalised
        return weighted.sum() / w.sum().detach() + self.lam * (weighted[:-1] - weighted[1:]).abs().sum()

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        rows = present_rows(ctx.present)
        self._ratios = self.ratios(losses, rows)
        if rows is not None and len(rows) == 0:
            return torch.zeros_like(losses)
        with torch.enable_grad():
            leaf = losses.detach().clone().requires_grad_(True)
            w = torch.sigmoid(self.logits.detach()).to(leaf)
            normalised = leaf / self._ratios
            if rows is not None:
                w, normalised = w[rows], normalised[rows]
            weighted = w * normalised
            value = weighted.sum() / w.sum() + self.lam * (weighted[:-1] - weighted[1:]).abs().sum()
            (grad,) = torch.autograd.grad(value, leaf, allow_unused=True)
        return torch.zeros_like(losses) if grad is None else grad.detach()

    def objective(self, losses: Tensor, weights: Tensor, ctx: StepContext) -> Tensor:
        return self.scalarise(losses, self._ratios, ctx.present)

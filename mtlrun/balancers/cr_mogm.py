"""CR-MOGM (``cr_mogm``): a weighting gradient method with its weights smoothed across steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, Balancer, GradientAggregator, StepContext, present_rows
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.errors import ConfigError, choices_error
from mtlrun.registry import in_range


def smoothable_methods() -> list[str]:
    """The registered methods CR-MOGM can wrap: gradient aggregators whose whole decision is task
    weights from the step's Jacobian (the template's ``weights`` hook, no backward of their own)."""
    return sorted(
        name
        for name in BALANCERS.names()
        if name != "cr_mogm" and isinstance(cls := BALANCERS.get(name), type) and _smoothable(cls)
    )


def _smoothable(cls: type) -> bool:
    return (
        issubclass(cls, GradientAggregator)
        and getattr(cls, "output", None) == "weights"
        and cls.backward is GradientAggregator.backward
        and cls.batches_per_step == 1
    )


@BALANCERS.register("cr_mogm")
class CRMOGM(GradientAggregator):
    """Correlation-reduced MOGM (Zhou et al., NeurIPS 2022, "On the Convergence of Stochastic
    Multi-Objective Gradient Manipulation and Beyond"; torchjd's ``CRMOGMWeighting``).

    A multi-objective gradient manipulation method (``base``: mgda, nash_mtl, upgrad, ...) gives weights
    ``lam_hat_k`` from the step's stochastic Jacobian; CR-MOGM uses their moving average instead,

        lam_k = alpha lam_{k-1} + (1 - alpha) lam_hat_k,   lam_0 = lam_hat_1,   d_k = J_k^T lam_k,

    which reduces the correlation between the weights and the step's gradient noise that keeps the
    plain methods from converging with small batches. ``alpha=0.9`` is torchjd's default (the paper lets alpha_k
    grow towards 1 as the learning rate decays; here it is fixed); ``alpha=0`` is the base method itself.
    ``base_options`` are the base method's own options.

    A task without labels in a batch (``ctx.present``) gets weight 0 and its smoothed weight stays as
    it was; the moving average runs over the present tasks. The smoothed weights (and any state of the
    base method) are buffers, so a checkpoint resumes them. Data parallel: the template all-reduces the
    Jacobian first, so every rank smooths the same weights.
    """

    output = "weights"

    def __init__(
        self,
        tasks: Sequence[str],
        base: str = "mgda",
        base_options: Mapping[str, Any] | None = None,
        alpha: float = 0.9,
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        in_range("balancer", "alpha", alpha, 0.0, 1.0)
        choices = smoothable_methods()
        if base not in choices:
            raise choices_error("balancer.base", base, choices)
        options = dict(base_options or {})
        clash = sorted(set(options) & {"rep_grad", "update_every", "jacobian_mode"})
        if clash:
            raise ConfigError(
                f"balancer.base_options.{clash[0]} is an option of cr_mogm itself: set balancer.{clash[0]}"
            )
        self.base_name, self.alpha = base, alpha
        self.base: Balancer = BALANCERS.build(base, options, tasks=self.tasks)
        self.register_buffer("smoothed", torch.zeros(self.num_tasks))
        self.register_buffer("seen", torch.zeros(self.num_tasks, dtype=torch.bool))

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        assert isinstance(self.base, GradientAggregator)
        raw = self.base.weights(jacobian, ctx).to(jacobian)
        rows = present_rows(ctx.present)
        index = (
            torch.arange(self.num_tasks, device=self.smoothed.device) if rows is None else rows.to(self.smoothed.device)
        )
        previous = self.smoothed[index].to(raw)
        seen = self.seen[index].to(raw.device)
        mixed = self.alpha * previous + (1.0 - self.alpha) * raw
        smoothed = torch.where(seen, mixed, raw)  # lam_0 = lam_hat_1, task by task
        self.smoothed[index] = smoothed.detach().to(self.smoothed)
        self.seen[index] = True
        return smoothed

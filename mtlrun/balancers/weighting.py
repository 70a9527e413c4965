"""Static loss weighting: equal weights (``ew``) and user-given weights (``fixed``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, BalanceInfo, LossWeighting, StepContext
from mtlrun.errors import ConfigError


@BALANCERS.register("ew")
class EqualWeighting(LossWeighting):
    """Equal weighting: minimise the plain sum of task losses (the usual MTL baseline)."""

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        return torch.ones_like(losses)

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        stacked.sum().backward()
        return BalanceInfo(weights=torch.ones_like(stacked))


@BALANCERS.register("fixed")
class FixedWeighting(LossWeighting):
    """Static user-given weights ``w_t`` (``tasks.weights``); tasks not named get weight 1."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None) -> None:
        super().__init__(tasks)
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.tasks))
        if unknown:
            raise ConfigError(
                f"balancer.weights names task(s) {', '.join(unknown)} not in the task set; "
                f"valid: {', '.join(self.tasks)}"
            )
        for task, w in weights.items():
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
                raise ConfigError(f"balancer.weights.{task}={w!r} must be a number >= 0")
        self.register_buffer("fixed", torch.tensor([float(weights.get(t, 1.0)) for t in self.tasks]))

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        return self.fixed.to(losses)

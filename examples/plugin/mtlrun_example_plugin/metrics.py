"""A metric for binary tasks: the Brier score."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class BrierScore(Metric):
    """The Brier score (Brier, 1950): the mean squared difference between the predicted probability
    and the 0/1 outcome; 0 is perfect, lower is better. It rewards calibrated probabilities, which
    accuracy and AUROC do not see."""

    higher_is_better = False
    is_differentiable = True
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.total += ((preds.double() - target.double()) ** 2).sum()
        self.count += target.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()

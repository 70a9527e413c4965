"""Ready-made TaskSpecs for the common kinds, with their losses and torchmetrics metrics.

Classification reports accuracy and macro-F1, binary accuracy and AUROC, regression MAE, RMSE
and R². Each metric object carries torchmetrics' ``higher_is_better``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, R2Score
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, MulticlassAccuracy, MulticlassF1Score

from mtlrun.data.base import TaskSpec


def classification_task(name: str, num_classes: int, primary: str = "accuracy") -> TaskSpec:
    return TaskSpec(
        name=name,
        kind="classification",
        out_dim=num_classes,
        loss=F.cross_entropy,
        metrics={
            "accuracy": lambda: MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "f1_macro": lambda: MulticlassF1Score(num_classes=num_classes, average="macro"),
        },
        primary=primary,
    )


def _binary_loss(output: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(output.squeeze(-1), target.float())


def binary_task(name: str, primary: str = "accuracy") -> TaskSpec:
    return TaskSpec(
        name=name,
        kind="binary",
        out_dim=1,
        loss=_binary_loss,
        metrics={"accuracy": BinaryAccuracy, "auroc": BinaryAUROC},
        primary=primary,
    )


class StandardizedMSE:
    """Mean squared error on the standardised target ``(y - shift) / scale``, so that regression
    losses start near 1 whatever the target's units (metrics still see the original units)."""

    def __init__(self, shift: float, scale: float) -> None:
        self.shift, self.scale = shift, scale

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output.squeeze(-1), (target - self.shift) / self.scale)


def regression_task(name: str, primary: str = "mae", shift: float = 0.0, scale: float = 1.0) -> TaskSpec:
    return TaskSpec(
        name=name,
        kind="regression",
        out_dim=1,
        loss=StandardizedMSE(shift, scale),
        target_shift=shift,
        target_scale=scale,
        metrics={"mae": MeanAbsoluteError, "rmse": lambda: MeanSquaredError(squared=False), "r2": R2Score},
        primary=primary,
    )

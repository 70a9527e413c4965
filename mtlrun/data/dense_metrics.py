"""Split-level metrics of the dense benchmarks (NYUv2, Cityscapes), accumulated pixel by pixel.

Every metric sums over all valid pixels of the whole split, so its value does not depend on the
batch size. This is LibMTL's definition (``LibMTL/metrics.py``: ``SegMetric`` accumulates one
confusion matrix over the split; ``DepthMetric`` weights each batch's mean error by its number of
valid pixels; ``NormalMetric`` concatenates every valid pixel's angle before taking the mean,
median and shares). MTAN's training script (``lorenmt/mtan``, ``utils.py``) accumulates the
confusion matrix the same way but averages the depth and normal errors of each batch over
batches, which weights pixels unequally when batches differ in valid pixels; the Nash-MTL and
FAMO code inherit MTAN's loop. Where every class occurs (the published splits) both give the
same mIoU.

Invalid pixels: segmentation labels ``< 0`` (``-1``), depth ``0`` in every channel, normals whose
three components are all ``0``. Shares are fractions in [0, 1]; the published tables print them
(and mIoU, pixel accuracy) multiplied by 100, which leaves relative changes (Δm) unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric


def valid_pixels(target: Tensor) -> Tensor:
    """(N, H, W) mask of pixels whose target (N, C, H, W) is not all-zero (MTAN's invalid marker)."""
    return (target != 0).any(dim=1)


def angle_degrees(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-pixel angle (N, H, W) between the normalised prediction and the unit target normals."""
    cosine = (F.normalize(prediction, dim=1) * target).sum(dim=1)
    return torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0)))


class ConfusionMatrix(Metric):
    """Confusion matrix ``M[target, prediction]`` over the split, ignoring targets outside ``[0, K)``."""

    full_state_update = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("matrix", default=torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """``logits`` (N, K, H, W) or class ids (N, H, W); ``target`` (N, H, W) with -1 for unlabeled."""
        predicted = logits.argmax(dim=1) if logits.dim() == target.dim() + 1 else logits
        target = target.long()
        keep = (target >= 0) & (target < self.num_classes)
        index = self.num_classes * target[keep] + predicted[keep].long()
        self.matrix += torch.bincount(index, minlength=self.num_classes**2).view(self.num_classes, self.num_classes)


class MeanIoU(ConfusionMatrix):
    """Mean intersection over union: ``IoU_k = M_kk / (sum_j M_kj + sum_j M_jk - M_kk)``, averaged
    over classes. A class absent from both the predictions and the targets of the split has 0/0;
    LibMTL and MTAN then return NaN for the mean, here the class is left out of the mean instead.
    A class that is predicted but never present counts with IoU 0, as in both."""

    higher_is_better = True

    def compute(self) -> Tensor:
        h = self.matrix.double()
        union = h.sum(0) + h.sum(1) - h.diag()
        present = union > 0
        if not present.any():
            return torch.tensor(float("nan"))
        return (h.diag()[present] / union[present]).mean().float()


class PixelAccuracy(ConfusionMatrix):
    """Share of labelled pixels whose predicted class is right: ``trace(M) / sum(M)``."""

    higher_is_better = True

    def compute(self) -> Tensor:
        h = self.matrix.double()
        return (h.diag().sum() / h.sum()).float() if h.sum() > 0 else torch.tensor(float("nan"))


class _ValidPixelMean(Metric):
    """Sum of a per-pixel error over the valid pixels of the split, divided by their number.

    Subclasses define ``error(prediction, target)`` on the valid pixels' values.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, prediction: Tensor, target: Tensor) -> None:
        mask = (target != 0).any(dim=1, keepdim=True).expand_as(target)
        self.total += self.error(prediction[mask], target[mask]).double().sum()
        self.count += mask.sum()

    def compute(self) -> Tensor:
        return (self.total / self.count).float() if self.count > 0 else torch.tensor(float("nan"))


class AbsError(_ValidPixelMean):
    """Mean absolute error ``|d̂ - d|`` over the valid (not all-zero) pixels of the split (depth AbsErr)."""

    @staticmethod
    def error(prediction: Tensor, target: Tensor) -> Tensor:
        return (prediction - target).abs()


class RelError(_ValidPixelMean):
    """Mean relative error ``|d̂ - d| / d`` over the valid pixels of the split (depth RelErr)."""

    @staticmethod
    def error(prediction: Tensor, target: Tensor) -> Tensor:
        return (prediction - target).abs() / target


class PixelRMSE(_ValidPixelMean):
    """Root of the mean squared error over the valid pixels (and channels) of the split."""

    @staticmethod
    def error(prediction: Tensor, target: Tensor) -> Tensor:
        return (prediction - target).square()

    def compute(self) -> Tensor:
        return super().compute().sqrt()


class _AngleMetric(Metric):
    """Keeps every valid pixel's angle error (degrees) of the split, like LibMTL's ``NormalMetric``.

    The median needs all of them: on NYUv2's 654 test images that is up to 72M floats (290 MB),
    kept on the evaluation device.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("angles", default=[], dist_reduce_fx="cat")

    def update(self, prediction: Tensor, target: Tensor) -> None:
        self.angles.append(angle_degrees(prediction, target)[valid_pixels(target)].float())

    def all_angles(self) -> Tensor:
        if isinstance(self.angles, Tensor):  # after a distributed sync
            return self.angles
        return torch.cat(self.angles) if self.angles else torch.zeros(0)


class AngleMean(_AngleMetric):
    """Mean angle (degrees) between predicted and true normals over the split's valid pixels."""

    higher_is_better = False

    def compute(self) -> Tensor:
        a = self.all_angles()
        return a.double().mean().float() if a.numel() else torch.tensor(float("nan"))


class AngleMedian(_AngleMetric):
    """Median angle (degrees) over the split's valid pixels; the mean of the two middle values for
    an even count, as ``numpy.median`` in LibMTL (``torch.median`` would return the lower one)."""

    higher_is_better = False

    def compute(self) -> Tensor:
        a = self.all_angles()
        n = a.numel()
        if n == 0:
            return torch.tensor(float("nan"))
        low = torch.kthvalue(a.cpu(), (n + 1) // 2).values
        high = torch.kthvalue(a.cpu(), n // 2 + 1).values
        return ((low.double() + high.double()) / 2).float()


class AngleWithin(_AngleMetric):
    """Share of the split's valid pixels whose angle error is strictly below ``degrees``."""

    higher_is_better = True

    def __init__(self, degrees: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.degrees = degrees

    def compute(self) -> Tensor:
        a = self.all_angles()
        return (a < self.degrees).double().mean().float() if a.numel() else torch.tensor(float("nan"))

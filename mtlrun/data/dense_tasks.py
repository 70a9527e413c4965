"""TaskSpecs of the per-pixel kinds, with the losses and metric sets of the dense MTL benchmarks.

Losses follow MTAN (Liu et al., CVPR 2019, ``lorenmt/mtan`` ``model_segnet_*.py``), which LibMTL,
Nash-MTL and FAMO reuse: cross-entropy with ``ignore_index=-1``; L1 over the valid depth pixels
(depth 0 is invalid); ``1 - cos`` between the normalised predicted normal and the true normal over
the valid normal pixels (an all-zero normal is invalid). Each loss is a sum over valid pixels
divided by their number, so invalid pixels give neither loss nor gradient; a batch with no valid
pixel gives a zero loss (MTAN's division by zero would give NaN).

The metric sets are exactly those of the Nash-MTL and FAMO tables (segmentation: mIoU, pixel
accuracy; depth: absolute and relative error; normal: mean and median angle, share within 11.25,
22.5 and 30 degrees), so the relative drop Δm of a run is comparable to theirs: every metric a
TaskSpec declares enters Δm.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mtlrun.data.base import MetricFactory, TaskSpec
from mtlrun.lazy import lazy_module

# the metrics subclass torchmetrics.Metric: loaded with torchmetrics when the first one is built
dm = lazy_module("mtlrun.data.dense_metrics")


def _per_valid_pixel(total: Tensor, count: Tensor) -> Tensor:
    return total / count.clamp_min(1)


def segmentation_loss(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy over the labelled pixels; label -1 is ignored."""
    target = target.long()
    total = F.cross_entropy(output, target, ignore_index=-1, reduction="sum")
    return _per_valid_pixel(total, (target != -1).sum())


def masked_l1_loss(output: Tensor, target: Tensor) -> Tensor:
    """L1 over the pixels whose target is not all-zero, divided by their number (MTAN's depth loss)."""
    mask = dm.valid_pixels(target).unsqueeze(1).to(output.dtype)
    return _per_valid_pixel(((output - target).abs() * mask).sum(), mask.sum() * target.shape[1])


def masked_mse_loss(output: Tensor, target: Tensor) -> Tensor:
    """Squared error over the pixels whose target is not all-zero, per valid value."""
    mask = dm.valid_pixels(target).unsqueeze(1).to(output.dtype)
    return _per_valid_pixel(((output - target).square() * mask).sum(), mask.sum() * target.shape[1])


def normal_loss(output: Tensor, target: Tensor) -> Tensor:
    """``1 - mean cos(n̂, n)`` over the valid pixels, with n̂ the prediction normalised to unit length."""
    mask = dm.valid_pixels(target).to(output.dtype)
    cosine = (F.normalize(output, dim=1) * target).sum(dim=1)
    return _per_valid_pixel(((1.0 - cosine) * mask).sum(), mask.sum())


def segmentation_task(name: str, num_classes: int, primary: str = "miou") -> TaskSpec:
    """Semantic segmentation: ``num_classes`` logits per pixel, targets (N, H, W) with -1 unlabeled."""
    return TaskSpec(
        name=name,
        kind="segmentation",
        out_dim=num_classes,
        loss=segmentation_loss,
        metrics={
            "miou": MetricFactory(lambda: dm.MeanIoU(num_classes), True),
            "pix_acc": MetricFactory(lambda: dm.PixelAccuracy(num_classes), True),
        },
        primary=primary,
    )


def depth_task(name: str = "depth", primary: str = "abs_err") -> TaskSpec:
    """Depth (or inverse depth) regression: one channel, targets (N, 1, H, W) with 0 invalid."""
    return TaskSpec(
        name=name,
        kind="depth",
        out_dim=1,
        loss=masked_l1_loss,
        metrics={
            "abs_err": MetricFactory(lambda: dm.AbsError(), False),
            "rel_err": MetricFactory(lambda: dm.RelError(), False),
        },
        primary=primary,
    )


def normal_task(name: str = "normal", primary: str = "mean") -> TaskSpec:
    """Surface normals: three channels, unit targets (N, 3, H, W) with the all-zero vector invalid."""
    return TaskSpec(
        name=name,
        kind="normal",
        out_dim=3,
        loss=normal_loss,
        metrics={
            "mean": MetricFactory(lambda: dm.AngleMean(), False),
            "median": MetricFactory(lambda: dm.AngleMedian(), False),
            "within_11_25": MetricFactory(lambda: dm.AngleWithin(11.25), True),
            "within_22_5": MetricFactory(lambda: dm.AngleWithin(22.5), True),
            "within_30": MetricFactory(lambda: dm.AngleWithin(30.0), True),
        },
        primary=primary,
    )


def pixel_regression_task(name: str, channels: int = 1, loss: str = "l1", primary: str = "mae") -> TaskSpec:
    """Any per-pixel regression with ``channels`` outputs; pixels whose target is all-zero are invalid.

    ``loss`` is ``l1`` or ``mse`` over the valid pixels; metrics are MAE and RMSE over every valid
    pixel of the split.
    """
    return TaskSpec(
        name=name,
        kind="regression",
        out_dim=channels,
        loss=masked_l1_loss if loss == "l1" else masked_mse_loss,
        metrics={
            "mae": MetricFactory(lambda: dm.AbsError(), False),
            "rmse": MetricFactory(lambda: dm.PixelRMSE(), False),
        },
        primary=primary,
        dense=True,
    )

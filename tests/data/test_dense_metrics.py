"""Dense metrics and losses against values computed by hand on 4x4 maps with invalid pixels."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtlrun.data.dense_metrics import (
    AbsError,
    AngleMean,
    AngleMedian,
    AngleWithin,
    MeanIoU,
    PixelAccuracy,
    RelError,
)
from mtlrun.data.dense_tasks import (
    depth_task,
    masked_l1_loss,
    normal_loss,
    normal_task,
    segmentation_loss,
    segmentation_task,
)

# class 2 is in neither the targets nor the predictions of labelled pixels (only predicted where
# the label is -1); class 3 is present but mostly missed
TARGET = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [-1, -1, 0, 0], [3, 3, 3, -1]])
PRED = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 0], [2, 2, 0, 0], [0, 3, 1, 0]])
# confusion M[t, p]: M00=5 M01=1 | M10=1 M11=3 | M30=1 M31=1 M33=1; 13 labelled pixels
MIOU = (5 / 8 + 3 / 6 + 1 / 3) / 3  # IoU_0 = 5/(6+7-5), IoU_1 = 3/(4+5-3), IoU_3 = 1/(3+1-1); class 2 left out
PIX_ACC = 9 / 13


def logits_of(pred: torch.Tensor, classes: int = 4) -> torch.Tensor:
    return F.one_hot(pred, classes).permute(2, 0, 1).float()[None] * 5.0


def test_miou_and_pixel_accuracy_from_the_confusion_matrix():
    miou, acc = MeanIoU(4), PixelAccuracy(4)
    miou.update(logits_of(PRED), TARGET[None])
    acc.update(logits_of(PRED), TARGET[None])
    assert miou.compute().item() == pytest.approx(MIOU, abs=1e-6)
    assert acc.compute().item() == pytest.approx(PIX_ACC, abs=1e-6)
    assert miou.matrix[2].sum() == 0 and miou.matrix[:, 2].sum() == 0


def test_confusion_accumulates_pixels_not_batch_means():
    """Two batches of very different label counts give the split's pixel-level values."""
    whole, parts = MeanIoU(4), MeanIoU(4)
    second_target = torch.full((4, 4), -1)
    second_target[0, 0] = 1  # one labelled pixel, predicted wrong
    second_pred = torch.zeros(4, 4, dtype=torch.long)
    both_t, both_p = torch.stack([TARGET, second_target]), torch.stack([PRED, second_pred])
    whole.update(logits_of(both_p[0])[0][None].expand(1, -1, -1, -1), both_t[:1])
    whole.update(logits_of(both_p[1]), both_t[1:])
    parts.update(torch.cat([logits_of(both_p[0]), logits_of(both_p[1])]), both_t)
    # IoU_0 = 5/(6+8-5), IoU_1 = 3/(5+5-3), IoU_3 = 1/3
    expected = (5 / 9 + 3 / 7 + 1 / 3) / 3
    assert whole.compute().item() == pytest.approx(expected, abs=1e-6)
    assert parts.compute().item() == pytest.approx(expected, abs=1e-6)


def test_depth_errors_over_valid_pixels_of_the_split():
    target = torch.tensor([[1.0, 2, 0, 4], [0, 1, 1, 0], [2, 2, 2, 2], [0, 0, 0, 5]])
    pred = torch.full((4, 4), 2.0)  # errors on valid pixels: 1,0,2 | 1,1 | 0,0,0,0 | 3  (sum 8, rel 4.1)
    second_target = torch.zeros(4, 4)
    second_target[1, 1] = 10.0
    second_pred = torch.full((4, 4), 20.0)  # one valid pixel: error 10, relative 1
    abs_err, rel_err = AbsError(), RelError()
    for t, p in ((target, pred), (second_target, second_pred)):
        abs_err.update(p[None, None], t[None, None])
        rel_err.update(p[None, None], t[None, None])
    assert abs_err.compute().item() == pytest.approx(18 / 11, abs=1e-6)  # not (0.8 + 10) / 2
    assert rel_err.compute().item() == pytest.approx(5.1 / 11, abs=1e-6)


ANGLES = [0.0, 10.0, 20.0, 25.0, 40.0, 60.0, 90.0, 180.0]


def normals_at_angles() -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, 4, 4) predictions at ANGLES from the target (0, 0, 1) on the first 8 pixels; the
    other 8 pixels have an all-zero (invalid) target and arbitrary predictions."""
    target = torch.zeros(3, 16, dtype=torch.float64)
    target[2, :8] = 1.0
    pred = torch.randn(3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    theta = torch.deg2rad(torch.tensor(ANGLES, dtype=torch.float64))
    pred[:, :8] = 2.5 * torch.stack([torch.sin(theta), torch.zeros(8, dtype=torch.float64), torch.cos(theta)])
    return pred.view(1, 3, 4, 4), target.view(1, 3, 4, 4)


def test_normal_angle_metrics_at_exact_angles():
    pred, target = normals_at_angles()
    values = {}
    for name, metric in {
        "mean": AngleMean(),
        "median": AngleMedian(),
        "11.25": AngleWithin(11.25),
        "22.5": AngleWithin(22.5),
        "30": AngleWithin(30.0),
    }.items():
        metric.update(pred, target)
        values[name] = metric.compute().item()
    assert values["mean"] == pytest.approx(sum(ANGLES) / 8, abs=1e-4)
    assert values["median"] == pytest.approx((25 + 40) / 2, abs=1e-4)  # numpy's median of an even count
    assert values["11.25"] == pytest.approx(2 / 8)
    assert values["22.5"] == pytest.approx(3 / 8)
    assert values["30"] == pytest.approx(4 / 8)


def test_median_of_odd_count_and_across_batches():
    pred, target = normals_at_angles()
    median = AngleMedian()
    median.update(pred[..., :2, :], target[..., :2, :])  # first row pair: pixels 0..7 -> all 8 angles
    target2 = torch.zeros(1, 3, 1, 1, dtype=torch.float64)
    target2[0, 2] = 1.0
    theta = math.radians(30.0)
    pred2 = torch.tensor([math.sin(theta), 0.0, math.cos(theta)], dtype=torch.float64).view(1, 3, 1, 1)
    median.update(pred2, target2)
    assert median.compute().item() == pytest.approx(30.0, abs=1e-4)  # 9 angles, middle one


def test_metric_directions_and_the_published_sets():
    assert segmentation_task("s", 13).metric_directions() == {"miou": True, "pix_acc": True}
    assert depth_task().metric_directions() == {"abs_err": False, "rel_err": False}
    assert normal_task().metric_directions() == {
        "mean": False,
        "median": False,
        "within_11_25": True,
        "within_22_5": True,
        "within_30": True,
    }


def test_segmentation_loss_ignores_unlabeled_pixels():
    logits = torch.randn(1, 4, 4, 4, requires_grad=True)
    loss = segmentation_loss(logits, TARGET[None])
    labelled = TARGET >= 0
    expected = F.cross_entropy(logits[0].permute(1, 2, 0)[labelled], TARGET[labelled])
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad[0][:, ~labelled].abs().sum() == 0


def test_depth_loss_is_l1_over_valid_pixels():
    target = torch.tensor([[1.0, 2, 0, 4], [0, 1, 1, 0], [2, 2, 2, 2], [0, 0, 0, 5]])[None, None]
    pred = torch.full_like(target, 2.0, requires_grad=True)
    loss = masked_l1_loss(pred, target)
    assert loss.item() == pytest.approx(0.8)
    (grad,) = torch.autograd.grad(loss, pred)
    assert grad[target == 0].abs().sum() == 0


def test_normal_loss_is_one_minus_mean_cosine_after_normalising():
    pred, target = normals_at_angles()
    pred.requires_grad_(True)
    loss = normal_loss(pred, target)
    expected = 1 - sum(math.cos(math.radians(a)) for a in ANGLES) / 8
    assert loss.item() == pytest.approx(expected, abs=1e-9)
    (grad,) = torch.autograd.grad(loss, pred)
    invalid = (target == 0).all(dim=1, keepdim=True).expand_as(grad)
    assert grad[invalid].abs().sum() == 0


def test_batches_without_valid_pixels_give_zero_loss():
    logits = torch.randn(1, 4, 4, 4, requires_grad=True)
    for loss in (
        segmentation_loss(logits, torch.full((1, 4, 4), -1)),
        masked_l1_loss(logits[:, :1], torch.zeros(1, 1, 4, 4)),
        normal_loss(logits[:, :3], torch.zeros(1, 3, 4, 4)),
    ):
        assert loss.item() == 0.0
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()

"""MTAN: masks are soft attention in (0, 1); all-ones masks give back the shared features."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from tests.models.helpers import batch, build


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_masks_lie_strictly_between_zero_and_one(encoder):
    model = build("mtan", encoder)
    x, _ = batch()
    masks = model.attention_masks(x)
    assert set(masks) == set(model.task_names)
    for t, per_stage in masks.items():
        assert [tuple(m.shape[1:]) for m in per_stage] == model.backbone.stage_shapes
        for m in per_stage:
            assert ((m > 0) & (m < 1)).all(), t


class Ones(nn.Module):
    """An attention module that lets every shared feature through."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return torch.ones(x.shape[0], self.channels, *x.shape[2:])


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_masks_of_one_give_the_shared_features(encoder):
    model = build("mtan", encoder).eval()
    for t in model.task_names:
        model.attention[t] = nn.ModuleList(Ones(shape[0]) for shape in model.backbone.stage_shapes)
    x, _ = batch()
    outputs = model(x)
    shared = model.backbone(x)
    for t in model.task_names:
        torch.testing.assert_close(outputs[t], model.heads[t](shared))


def test_tasks_get_different_features():
    model = build("mtan").eval()
    x, _ = batch()
    masks = model.attention_masks(x)
    assert not torch.allclose(masks["a"][-1], masks["b"][-1])

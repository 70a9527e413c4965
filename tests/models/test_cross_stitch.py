"""Cross-stitch units: initialisation and the identity reduction to independent columns."""

from __future__ import annotations

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.models.helpers import batch, build


def test_units_start_identity_dominant():
    model = build("cross_stitch", alpha_self=0.8)
    T = len(model.task_names)
    for unit in model.units:
        matrix = torch.stack([unit[t].alpha for t in model.task_names])
        expected = torch.full((T, T), 0.2 / (T - 1))
        expected.fill_diagonal_(0.8)
        torch.testing.assert_close(matrix.detach(), expected)


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_identity_units_give_independent_columns(encoder):
    model = build("cross_stitch", encoder).eval()
    with torch.no_grad():
        for unit in model.units:
            for i, t in enumerate(model.task_names):
                row = torch.nn.functional.one_hot(torch.tensor(i), len(model.task_names)).float()
                alpha = unit[t].alpha  # (T,) on vectors, (T, C) per channel on maps
                alpha.copy_(row.view(-1, *[1] * (alpha.dim() - 1)).expand_as(alpha))
    x, _ = batch()
    outputs = model(x)
    for t in model.task_names:
        alone = model.heads[t](model.columns[t](x))
        torch.testing.assert_close(outputs[t], alone)


def test_units_mix_columns():
    """With the default initialisation a task's output depends on the other columns."""
    model = build("cross_stitch").eval()
    x, _ = batch()
    before = model(x)["a"]
    with torch.no_grad():
        for p in model.columns["b"].parameters():
            p.add_(0.5)
    assert not torch.allclose(model(x)["a"], before)


def test_alpha_self_range():
    with pytest.raises(ConfigError, match=r"arch.alpha_self=1.5 must be in \[0, 1\]"):
        build("cross_stitch", alpha_self=1.5)

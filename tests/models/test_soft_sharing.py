"""Soft sharing: the penalty measures how far apart the task encoders are, and pulls them together."""

from __future__ import annotations

import math

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.models.helpers import batch, build, losses


def equalise(model) -> None:
    first = model.encoders[model.task_names[0]].state_dict()
    for t in model.task_names[1:]:
        model.encoders[t].load_state_dict(first)


def perturb(model, task: str, scale: float, seed: int = 3) -> None:
    """Move one task's encoder by ``scale`` along a fixed direction orthogonal to each of its parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.encoders[task].parameters():
            d = torch.randn(p.shape, generator=g)
            d -= (d * p).sum() / (p * p).sum().clamp_min(1e-12) * p
            p.add_(scale * d / d.norm().clamp_min(1e-12))


def test_l2_penalty_is_zero_for_equal_encoders_and_grows_with_distance():
    values = []
    for scale in [0.0, 0.1, 0.2, 0.4]:
        model = build("soft_sharing", strength=2.0)
        equalise(model)
        perturb(model, "b", scale)
        values.append(model.extra_losses()["soft_sharing_penalty"].item())
    assert values[0] == 0.0
    assert values[1] < values[2] < values[3]
    # sum over pairs of squared distances: one task moved by `scale` in every parameter tensor
    n_tensors = len(list(build("soft_sharing").encoders["a"].parameters()))
    assert values[3] == pytest.approx(2.0 * 2 * n_tensors * 0.4**2, rel=1e-4)


def test_trace_penalty_of_equal_encoders_and_growth():
    model = build("soft_sharing", penalty="trace", strength=1.0)
    equalise(model)
    T = len(model.task_names)
    # equal rows: rank one, the only singular value is sqrt(T) * ||w||
    expected = sum(math.sqrt(T) * p.norm().item() for p in model.encoders["a"].parameters())
    assert model.extra_losses()["soft_sharing_penalty"].item() == pytest.approx(expected, rel=1e-5)
    values = []
    for scale in [0.1, 0.2, 0.4]:
        model = build("soft_sharing", penalty="trace", strength=1.0)
        equalise(model)
        perturb(model, "b", scale)
        values.append(model.extra_losses()["soft_sharing_penalty"].item())
    assert expected < values[0] < values[1] < values[2]


def encoder_distance(model) -> float:
    """Sum over task pairs and parameters of squared differences, computed here independently."""
    a, b, c = (dict(model.encoders[t].named_parameters()) for t in model.task_names)
    return sum(((a[k] - b[k]) ** 2).sum() + ((a[k] - c[k]) ** 2).sum() + ((b[k] - c[k]) ** 2).sum() for k in a).item()


@pytest.mark.parametrize("penalty", ["l2", "trace"])
def test_large_strength_drives_encoders_together(penalty):
    def train(strength: float) -> float:
        model = build("soft_sharing", penalty=penalty, strength=strength)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        x, targets = batch(n=32)
        for _ in range(60):
            optimizer.zero_grad()
            objective = sum(losses(model, x, targets).values()) + sum(model.extra_losses().values())
            objective.backward()
            optimizer.step()
        return encoder_distance(model)

    free, tied = train(0.0), train(10.0)
    assert tied < 0.25 * free


def test_options():
    assert build("soft_sharing", strength=0.0).extra_losses() == {}
    with pytest.raises(ConfigError, match="arch.strength=-1.0 must be >= 0"):
        build("soft_sharing", strength=-1.0)
    with pytest.raises(ConfigError, match="arch.penalty='l1' has the wrong type; expected one of l2, trace"):
        build("soft_sharing", penalty="l1")

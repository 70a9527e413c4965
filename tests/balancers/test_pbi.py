"""PBI: the weights are the gradient of d1 + theta d2 with respect to the losses."""

from __future__ import annotations

import pytest
import torch

from mtlrun.balancers import BALANCERS
from mtlrun.errors import ConfigError
from tests.balancers.weighting_toys import bare_context


def build(num_tasks: int, **options):
    return BALANCERS.build("pbi", options, tasks=[f"t{i}" for i in range(num_tasks)]).double()


def pbi_value(losses: torch.Tensor, theta: float, preference: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """d1 + theta d2 of MOEA/D (Zhang & Li 2007), written from the definition."""
    f = losses - reference
    u = preference / preference.norm()
    d1 = f @ u
    d2 = (f - d1 * u).norm()
    return d1 + theta * d2


@pytest.mark.parametrize("seed", range(4))
def test_weights_are_the_gradient_of_the_scalarisation(seed):
    gen = torch.Generator().manual_seed(seed)
    losses = torch.rand(3, generator=gen, dtype=torch.float64) * 3 + 0.1
    preference = torch.rand(3, generator=gen, dtype=torch.float64) + 0.1
    reference = -torch.rand(3, generator=gen, dtype=torch.float64)
    balancer = build(3, theta=2.5, preference=preference.tolist(), reference=reference.tolist())
    w = balancer.weights(losses, bare_context())
    leaf = losses.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(pbi_value(leaf, 2.5, preference, reference), leaf)
    assert torch.allclose(w, expected, rtol=1e-9)


def test_on_the_preference_ray_the_weights_are_the_unit_preference():
    preference = torch.tensor([1.0, 3.0], dtype=torch.float64)
    w = build(2, theta=5.0, preference=preference.tolist()).weights(2.0 * preference, bare_context())
    assert torch.allclose(w, preference / preference.norm(), atol=1e-5)


def test_a_gradient_step_on_the_losses_moves_them_towards_the_ray():
    """With theta > 0 the perpendicular distance d2 falls under a small step along -w."""
    balancer = build(2, theta=5.0)
    losses = torch.tensor([1.0, 3.0], dtype=torch.float64)
    w = balancer.weights(losses, bare_context())
    assert float(w[0]) < 0 < float(w[1])  # the task ahead of the ray is pushed back
    u = torch.ones(2, dtype=torch.float64) / 2**0.5
    d2 = lambda f: float((f - (f @ u) * u).norm())  # noqa: E731
    assert d2(losses - 0.01 * w) < d2(losses)


def test_matches_torchjd():
    scalarization = pytest.importorskip("torchjd.scalarization")
    losses = torch.tensor([0.7, 1.9, 0.4], dtype=torch.float64)
    preference = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    leaf = losses.clone().requires_grad_(True)
    scalarization.PBI(theta=5.0, weights=preference)(leaf).backward()
    w = build(3, theta=5.0, preference=preference.tolist()).weights(losses, bare_context())
    assert torch.allclose(w, leaf.grad, rtol=1e-9)


def test_an_absent_task_is_left_out_of_the_decomposition():
    ctx = bare_context()
    ctx.present = torch.tensor([True, False, True])
    w = build(3, theta=5.0).weights(torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64), ctx)
    two = build(2, theta=5.0).weights(torch.tensor([1.0, 3.0], dtype=torch.float64), bare_context())
    assert float(w[1]) == 0.0 and torch.allclose(w[[0, 2]], two)


def test_options_are_checked():
    with pytest.raises(ConfigError, match=r"balancer\.preference has 2 values"):
        build(3, preference=[1.0, 1.0])
    with pytest.raises(ConfigError, match=r"balancer\.theta=-1"):
        build(3, theta=-1.0)

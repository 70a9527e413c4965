"""ConFIG: equal positive cosine with every task gradient, and the paper's length rule."""

from __future__ import annotations

import pytest
import torch

from tests.balancers.gradient_toys import build, random_jacobian, update


@pytest.mark.parametrize("num_tasks,seed", [(2, 0), (3, 1), (5, 2)])
def test_direction_has_equal_positive_cosine_with_each_gradient(num_tasks, seed):
    J = random_jacobian(num_tasks, seed=seed) * torch.linspace(0.1, 5, num_tasks, dtype=torch.float64)[:, None]
    d = update(build("conflict_free", num_tasks), J)
    cosines = (J @ d) / (J.norm(dim=1) * d.norm())
    assert torch.all(cosines > 0)
    assert torch.allclose(cosines, cosines.mean().expand(num_tasks), atol=1e-10)
    # length rule: ||d|| is the sum of the projections of the task gradients on d's direction
    assert d.norm().item() == pytest.approx(float((J @ (d / d.norm())).sum()))


def test_matches_the_pseudo_inverse_in_parameter_space():
    J = random_jacobian(3, seed=3)
    units = J / J.norm(dim=1, keepdim=True)
    g_u = torch.linalg.pinv(units) @ torch.ones(3, dtype=torch.float64)
    direction = g_u / g_u.norm()
    expected = (J @ direction).sum() * direction
    assert torch.allclose(update(build("conflict_free"), J), expected, atol=1e-10)


def test_a_zero_gradient_gets_no_weight():
    J = random_jacobian(3, seed=4)
    J[2] = 0
    d = update(build("conflict_free"), J)
    cosines = (J[:2] @ d) / (J[:2].norm(dim=1) * d.norm())
    assert torch.allclose(cosines[0], cosines[1])

"""PCGrad: projections of conflicting gradients, computed from the Gramian."""

from __future__ import annotations

import torch

from mtlrun.balancers.pcgrad import pcgrad_coefficients
from tests.balancers.gradient_toys import build, random_jacobian, update, weights


def test_two_conflicting_tasks_match_the_hand_projection():
    g1 = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    g2 = torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64)
    assert g1 @ g2 < 0
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    J = torch.stack([g1, g2])
    assert torch.allclose(update(build("pcgrad", 2), J), p1 + p2, atol=1e-12)
    C = torch.from_numpy(pcgrad_coefficients((J @ J.T).numpy()))
    projected = C @ J
    assert projected[0] @ g2 >= -1e-12 and projected[1] @ g1 >= -1e-12


def test_non_conflicting_gradients_pass_unchanged():
    J = torch.rand(4, 9, dtype=torch.float64)  # non-negative entries: every inner product >= 0
    assert torch.allclose(weights(build("pcgrad", 4), J), torch.ones(4, dtype=torch.float64))


def test_random_order_follows_the_global_seed():
    J = random_jacobian(5, dim=6, seed=1)
    torch.manual_seed(0)
    first = update(build("pcgrad", 5), J)
    torch.manual_seed(0)
    again = update(build("pcgrad", 5), J)
    assert torch.equal(first, again)


def test_a_third_orthogonal_task_is_left_alone():
    g1 = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    g2 = torch.tensor([-1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    g3 = torch.tensor([0.0, 0.0, 0.0, 2.0], dtype=torch.float64)
    J = torch.stack([g1, g2, g3])
    C = torch.from_numpy(pcgrad_coefficients((J @ J.T).numpy()))
    projected = C @ J
    assert torch.allclose(projected[0], g1 - (g1 @ g2) / (g2 @ g2) * g2)
    assert torch.allclose(projected[1], g2 - (g2 @ g1) / (g1 @ g1) * g1)
    assert torch.allclose(projected[2], g3)

"""MoCo: the tracked Jacobian and weights converge on fixed gradients; state is checkpointed."""

from __future__ import annotations

import numpy as np
import torch

from mtlrun.balancers.moco import project_to_simplex
from tests.balancers.gradient_toys import build, random_jacobian, update, weights


def test_simplex_projection_matches_the_definition():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        v = torch.randn(5, generator=generator, dtype=torch.float64) * 2
        p = project_to_simplex(v)
        assert torch.all(p >= 0) and abs(p.sum().item() - 1) < 1e-12
        # optimality: v - p is constant on the support and no larger off it
        gap = v - p
        support = p > 0
        assert torch.allclose(gap[support], gap[support].mean().expand(int(support.sum())))
        assert torch.all(gap[~support] <= gap[support].mean() + 1e-12)


def test_converges_to_the_mgda_direction_on_fixed_gradients():
    J = random_jacobian(3, dim=6, seed=1) / 3
    balancer = build("moco", 3, beta=0.5, beta_sigma=0.0, gamma=0.5, gamma_sigma=0.0, normalize=False)
    for _ in range(3000):
        d = update(balancer, J)
    assert torch.allclose(balancer.tracked, J, atol=1e-10)
    mgda = weights(build("mgda", 3), J)
    assert torch.allclose(balancer.lambd, mgda, atol=1e-5)
    assert torch.allclose(d, mgda @ J, atol=1e-5)


def test_normalized_targets_are_loss_scaled_unit_gradients():
    J = random_jacobian(2, seed=2)
    losses = torch.tensor([2.0, 0.5], dtype=torch.float64)
    balancer = build("moco", 2, beta=1.0, beta_sigma=0.0)
    update(balancer, J, losses)
    assert torch.allclose(balancer.tracked, J / (J.norm(dim=1, keepdim=True) + 1e-8) * losses[:, None])


def test_state_dict_resumes_the_trajectory():
    J1, J2 = random_jacobian(3, seed=3), random_jacobian(3, seed=4)
    first = build("moco")
    update(first, J1)
    resumed = build("moco")
    resumed.load_state_dict(first.state_dict())
    assert int(resumed.steps) == 1
    assert np.allclose(update(first, J2).numpy(), update(resumed, J2).numpy())

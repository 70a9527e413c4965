"""Gradient Vaccine: cosine targets and their moving average."""

from __future__ import annotations

import math

import numpy as np
import torch

from mtlrun.balancers.gradvac import gradvac_coefficients
from tests.balancers.gradient_toys import build, random_jacobian, weights


def cosine(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def test_update_reaches_the_target_cosine():
    g1 = torch.tensor([1.0, 0.2, 0.0], dtype=torch.float64)
    g2 = torch.tensor([-0.3, 1.0, 0.5], dtype=torch.float64)
    J = torch.stack([g1, g2])
    phi = cosine(g1, g2)
    targets = np.full((2, 2), 0.5)
    assert phi < 0.5
    C, updated = gradvac_coefficients((J @ J.T).numpy(), targets, beta=0.01, eps=0.0)
    aligned = torch.from_numpy(C) @ J
    assert math.isclose(cosine(aligned[0], g2), 0.5, abs_tol=1e-10)
    assert math.isclose(cosine(aligned[1], g1), 0.5, abs_tol=1e-10)
    assert math.isclose(updated[0, 1], 0.99 * 0.5 + 0.01 * phi, abs_tol=1e-12)


def test_gradients_above_their_targets_are_untouched_and_targets_track_the_cosine():
    J = torch.rand(3, 7, dtype=torch.float64) + 0.1  # positive cosines, targets start at 0
    balancer = build("gradvac", 3, beta=0.5)
    assert torch.allclose(weights(balancer, J), torch.ones(3, dtype=torch.float64))
    G = J @ J.T
    expected = 0.5 * (G / torch.outer(G.diag().sqrt(), G.diag().sqrt()))
    off_diagonal = ~torch.eye(3, dtype=torch.bool)
    assert torch.allclose(balancer.targets[off_diagonal], expected[off_diagonal], atol=1e-7)
    assert "targets" in balancer.state_dict()


def test_default_targets_act_like_pcgrad_on_first_step():
    """With zero targets a conflicting pair is made orthogonal, as PCGrad does."""
    J = random_jacobian(2, seed=3)
    if cosine(J[0], J[1]) > 0:
        J[1] = -J[1]
    torch.manual_seed(0)
    ours = weights(build("gradvac", 2), J)
    torch.manual_seed(0)
    pcgrad = weights(build("pcgrad", 2), J)
    assert torch.allclose(ours, pcgrad, atol=1e-6)

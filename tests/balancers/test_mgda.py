"""MGDA: the min-norm point of the convex hull, against closed forms and an independent QP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from mtlrun.balancers.solvers import min_norm_weights
from mtlrun.errors import ConfigError
from tests.balancers.gradient_toys import build, random_jacobian, shared_grad, shared_jacobian, toy_step, weights


def qp_min_norm(G: np.ndarray) -> np.ndarray:
    T = len(G)
    best = None
    for start in [np.full(T, 1.0 / T), *np.eye(T)]:
        result = minimize(
            lambda w: w @ G @ w,
            start,
            jac=lambda w: 2 * G @ w,
            bounds=[(0, 1)] * T,
            method="SLSQP",
            constraints={"type": "eq", "fun": lambda w: w.sum() - 1},
            options={"ftol": 1e-15, "maxiter": 500},
        )
        if best is None or result.fun < best.fun:
            best = result
    return best.x


def test_two_tasks_match_the_closed_form():
    g1 = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    g2 = torch.tensor([-2.0, 0.5, 1.0], dtype=torch.float64)
    gamma = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)))
    assert 0 < gamma < 1
    w = weights(build("mgda", 2), torch.stack([g1, g2]))
    assert torch.allclose(w, torch.tensor([gamma, 1 - gamma], dtype=torch.float64), atol=1e-12)


def test_two_tasks_clip_to_the_smaller_gradient_when_it_lies_inside():
    # g1 = 0.5 g2 + orthogonal bits: the min-norm point is g1 itself (gamma clipped to 1)
    g1 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    g2 = torch.tensor([3.0, 1.0], dtype=torch.float64)
    w = weights(build("mgda", 2), torch.stack([g1, g2]))
    assert torch.allclose(w, torch.tensor([1.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("num_tasks", [3, 4, 6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_more_tasks_match_a_scipy_qp(num_tasks, seed):
    J = random_jacobian(num_tasks, dim=8, seed=seed)
    G = (J @ J.T).numpy()
    ours = weights(build("mgda", num_tasks), J).numpy()
    reference = qp_min_norm(G)
    assert ours.min() >= 0 and abs(ours.sum() - 1) < 1e-12
    assert ours @ G @ ours <= reference @ G @ reference + 1e-9
    assert np.allclose(ours, reference, atol=1e-5)  # G is positive definite: the minimiser is unique


def test_result_is_pareto_stationary_direction():
    """KKT of the min-norm problem: every task gradient has inner product >= ||d||^2 with d = J^T w."""
    J = random_jacobian(5, dim=4, seed=3)  # more tasks than dimensions: 0 may be in the hull
    d = weights(build("mgda", 5), J) @ J
    assert torch.all(J @ d >= d @ d - 1e-9)


def test_solver_is_scale_invariant_and_handles_zero_gradients():
    J = random_jacobian(3, seed=4)
    G = (J @ J.T).numpy()
    assert np.allclose(min_norm_weights(G), min_norm_weights(1e-12 * G), atol=1e-9)
    assert np.allclose(min_norm_weights(np.zeros((3, 3))), 1 / 3)


@pytest.mark.parametrize("normalization", ["l2", "loss", "loss+"])
def test_normalizations_follow_the_authors_code(normalization):
    J = random_jacobian(3, seed=5)
    losses = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    norms = J.norm(dim=1)
    scale = {"l2": norms, "loss": losses, "loss+": losses * norms}[normalization]
    expected = qp_min_norm(((J / scale[:, None]) @ (J / scale[:, None]).T).numpy())
    ours = weights(build("mgda", normalization=normalization), J, losses)
    assert np.allclose(ours.numpy(), expected, atol=1e-5)


def test_backward_writes_the_weighted_gradient():
    toy = toy_step(3)
    J = shared_jacobian(toy)
    info = build("mgda").backward(toy.losses, toy.ctx)
    assert torch.allclose(shared_grad(toy), info.weights @ J.float(), atol=1e-5)
    assert torch.allclose(info.jacobian, J, atol=1e-6)


def test_bad_normalization_is_a_config_error():
    with pytest.raises(ConfigError, match="balancer.normalization"):
        build("mgda", normalization="max")

"""MoDo: the double-sampled weight step, convergence to MGDA's weights, state and CLI."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from mtlrun.balancers.modo import MoDo
from tests.balancers.lookahead_toys import (
    FAST,
    TASKS,
    TinyLinear,
    make_batch,
    make_context,
    shared_grad,
    task_gradients,
)


def simplex_projection_by_bisection(v: torch.Tensor) -> torch.Tensor:
    """Proj onto the simplex as v - theta clipped at 0, theta found by bisection on sum = 1."""
    low, high = float(v.min()) - 1.0, float(v.max())
    for _ in range(200):
        theta = 0.5 * (low + high)
        if float((v - theta).clamp(min=0).sum()) > 1.0:
            low = theta
        else:
            high = theta
    return (v - 0.5 * (low + high)).clamp(min=0)


def min_norm_weights_by_slsqp(G: np.ndarray) -> np.ndarray:
    T = G.shape[0]
    result = minimize(
        lambda w: w @ G @ w,
        np.full(T, 1.0 / T),
        jac=lambda w: 2 * G @ w,
        method="SLSQP",
        bounds=[(0, 1)] * T,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"ftol": 1e-15},
    )
    return result.x


def test_weight_step_uses_the_inner_product_of_two_independent_batches():
    model = TinyLinear(seed=2)
    z3, z1, z2 = make_batch(seed=20), make_batch(seed=21), make_batch(seed=22)
    shared = list(model.shared.parameters())
    j1, j2, j3 = (task_gradients(model, b, shared) for b in (z1, z2, z3))
    balancer = MoDo(TASKS, gamma=0.05, rho=0.1)
    lam0 = torch.full((2,), 0.5, dtype=torch.float64)
    losses, ctx = make_context(model, z3, extra=[z1, z2])
    info = balancer.backward(losses, ctx)
    expected = simplex_projection_by_bisection(lam0 - 0.05 * (j1 @ j2.T @ lam0 + 0.1 * lam0))
    torch.testing.assert_close(info.weights, expected, rtol=1e-6, atol=1e-9)
    single = simplex_projection_by_bisection(lam0 - 0.05 * (j1 @ j1.T @ lam0 + 0.1 * lam0))
    assert not torch.allclose(single, expected, atol=1e-6), "the toy must tell J1 J2^T from J1 J1^T"
    torch.testing.assert_close(shared_grad(model), expected @ j3, rtol=1e-6, atol=1e-9)


def test_converges_to_min_norm_weights_on_fixed_gradients():
    g = torch.Generator().manual_seed(0)
    jac = torch.randn(3, 6, generator=g, dtype=torch.float64)
    jac[2] = -0.5 * jac[0] + 0.3 * jac[1]  # conflicting tasks: an interior min-norm point
    balancer = MoDo(["a", "b", "c"], gamma=0.02, rho=0.0).double()
    for _ in range(20000):
        lam = balancer.update_weights(jac, jac)
    expected = min_norm_weights_by_slsqp((jac @ jac.T).numpy())
    assert (expected > 1e-3).sum() >= 2
    np.testing.assert_allclose(lam.numpy(), expected, atol=1e-4)


def test_state_dict_round_trip():
    model, batch = TinyLinear(seed=4), make_batch(seed=4)
    first = MoDo(TASKS, gamma=0.5)
    losses, ctx = make_context(model, batch, extra=[make_batch(seed=5), make_batch(seed=6)])
    first.backward(losses, ctx)
    assert not torch.allclose(first.lam, torch.full((2,), 0.5))
    second = MoDo(TASKS, gamma=0.5)
    second.load_state_dict(first.state_dict())
    torch.testing.assert_close(second.lam, first.lam)


def test_bad_hyperparameter_is_a_one_line_error(cli):
    result = cli("balancer=modo", "balancer.gamma=0", *FAST)
    assert result.code == 2
    assert "balancer.gamma=0" in result.err and len(result.err.strip().splitlines()) == 1

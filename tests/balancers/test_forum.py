"""FORUM: the first-order gradient of the value-function constraint, the dual aggregation, state and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from mtlrun.balancers.forum import FORUM, forum_weights
from tests.balancers.lookahead_toys import FAST, TASKS, TinyLinear, make_batch, make_context, mse_losses


def test_constraint_gradient_matches_finite_differences():
    model, batch = TinyLinear(seed=4), make_batch(seed=40)
    balancer = FORUM(TASKS, inner_lr=0.3, inner_steps=3).double()
    logits = torch.tensor([0.4, -0.1], dtype=torch.float64)
    balancer.logits.copy_(logits)
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    losses, ctx = make_context(model, batch)
    q_logits, q_omega = balancer.constraint_gradient(torch.stack([losses[t] for t in TASKS]), names, params, ctx)

    def f(a: torch.Tensor, omega: dict[str, torch.Tensor]) -> torch.Tensor:
        out = mse_losses(torch.func.functional_call(model, omega, (batch[0],)), batch[1])
        return (torch.softmax(a, 0) * torch.stack([out[t] for t in TASKS])).sum()

    # omega^K: K plain gradient steps on f(a, .) from omega, then held fixed
    omega_k = {n: p.detach().clone() for n, p in zip(names, params)}
    for _ in range(3):
        leaves = {n: v.requires_grad_(True) for n, v in omega_k.items()}
        grads = torch.autograd.grad(f(logits, leaves), list(leaves.values()))
        omega_k = {n: (v - 0.3 * g).detach() for (n, v), g in zip(leaves.items(), grads)}
    omega = {n: p.detach().clone() for n, p in zip(names, params)}
    assert float(f(logits, omega_k)) < float(f(logits, omega))

    def q(a: torch.Tensor, om: dict[str, torch.Tensor]) -> float:
        return float(f(a, om) - f(a, omega_k))

    eps = 1e-6
    numeric_a = [(q(logits + eps * e, omega) - q(logits - eps * e, omega)) / (2 * eps) for e in torch.eye(2).double()]
    torch.testing.assert_close(q_logits, torch.tensor(numeric_a, dtype=torch.float64), rtol=1e-5, atol=1e-10)
    numeric_omega = []
    for n, v in omega.items():
        for i in range(v.numel()):
            bump = torch.zeros(v.numel(), dtype=torch.float64)
            bump[i] = eps
            plus = {**omega, n: v + bump.view_as(v)}
            minus = {**omega, n: v - bump.view_as(v)}
            numeric_omega.append((q(logits, plus) - q(logits, minus)) / (2 * eps))
    torch.testing.assert_close(q_omega, torch.tensor(numeric_omega, dtype=torch.float64), rtol=1e-5, atol=1e-9)


def joint_qp_by_slsqp(gF: np.ndarray, gq: np.ndarray, rho: float) -> tuple[np.ndarray, float]:
    T, phi = gF.shape[0], rho * gq @ gq

    def objective(x: np.ndarray) -> float:
        d = x[:T] @ gF + x[T] * gq
        return 0.5 * d @ d - x[T] * phi

    x0 = np.concatenate([np.full(T, 1 / T), [0.0]])
    result = minimize(
        objective,
        x0,
        method="SLSQP",
        bounds=[(0, 1)] * T + [(0, None)],
        constraints=[{"type": "eq", "fun": lambda x: x[:T].sum() - 1.0}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return result.x[:T], float(result.x[T])


@pytest.mark.parametrize("seed", range(6))
def test_dual_weights_solve_the_direction_problem(seed):
    rng = np.random.default_rng(seed)
    gF = rng.normal(size=(3, 7))
    gF /= np.linalg.norm(gF, axis=1, keepdims=True)
    gq = rng.normal(size=7) * (0.3 if seed % 2 else 3.0)
    lam, nu = forum_weights(gF @ gF.T, gF @ gq, float(gq @ gq), rho=0.1)
    expected_lam, expected_nu = joint_qp_by_slsqp(gF, gq, 0.1)
    np.testing.assert_allclose(lam, expected_lam, atol=2e-5)
    np.testing.assert_allclose(nu, expected_nu, atol=2e-5 * max(1.0, expected_nu))
    assert abs(lam.sum() - 1) < 1e-9 and (lam >= 0).all() and nu >= 0
    pi = 0.1 - gF @ gq / (gq @ gq)
    assert nu == pytest.approx(max(float(lam @ pi), 0.0), abs=1e-6 * max(1.0, nu))  # optimal nu for these lam
    if nu > 1e-6:  # the constraint <grad q, d> <= -phi is active
        d = -(lam @ gF + nu * gq)
        assert gq @ d == pytest.approx(-0.1 * gq @ gq, rel=1e-5)


def test_dual_weights_are_smoothed_over_iterations():
    model, val = TinyLinear(seed=8), make_batch(seed=81)
    balancer = FORUM(TASKS, upper_split="val", ema_power=0.75).double()
    losses, ctx = make_context(model, make_batch(seed=80), val=val)
    balancer.backward(losses, ctx)
    first = balancer.lam.clone()
    assert float(first.sum()) == pytest.approx(1.0)  # beta_0 = 1: the first solution itself
    model.zero_grad()
    losses, ctx = make_context(model, make_batch(seed=82), val=val, step=1)
    balancer.backward(losses, ctx)
    assert int(balancer.updates) == 2
    assert float(balancer.lam.sum()) == pytest.approx(1.0)  # a convex combination of simplex points


def test_state_dict_round_trip():
    model = TinyLinear(seed=9)
    first = FORUM(TASKS, weight_lr=0.05)
    losses, ctx = make_context(model, make_batch(seed=90), extra=[make_batch(seed=91)])
    first.backward(losses, ctx)
    second = FORUM(TASKS, weight_lr=0.05)
    second.load_state_dict(first.state_dict())
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value)
    assert int(second.updates) == 1 and float(second.lam.sum()) == pytest.approx(1.0)


def test_bad_hyperparameter_is_a_one_line_error(cli):
    result = cli("balancer=forum", "balancer.inner_steps=0", *FAST)
    assert result.code == 2
    assert "balancer.inner_steps=0" in result.err and len(result.err.strip().splitlines()) == 1

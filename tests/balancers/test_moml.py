"""MOML: exact one-step hypergradients (finite differences), the MGDA upper step, state and CLI."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from mtlrun.balancers.base import BalanceInfo
from mtlrun.balancers.moml import MOML
from tests.balancers.lookahead_toys import (
    FAST,
    TASKS,
    TinyLinear,
    make_batch,
    make_context,
    mse_losses,
    task_gradients,
)


def test_hypergradients_match_finite_differences():
    model, batch, val = TinyLinear(seed=3), make_batch(seed=30), make_batch(seed=31)
    balancer = MOML(TASKS, inner_lr=0.2).double()
    balancer.logits.copy_(torch.tensor([0.3, -0.2]))
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    _, ctx = make_context(model, batch, val=val)
    hyper = balancer.hypergradients(task_gradients(model, batch, params), names, params, ctx)

    def upper_losses_after_inner_step(logits: Tensor) -> Tensor:
        w = torch.softmax(logits, dim=0)
        train = mse_losses(model(batch[0]), batch[1])
        grads = torch.autograd.grad(sum(w[i] * train[t] for i, t in enumerate(TASKS)), params)
        with torch.no_grad():
            ahead = {n: p - 0.2 * g for n, p, g in zip(names, params, grads)}
            upper = mse_losses(torch.func.functional_call(model, ahead, (val[0],)), val[1])
            return torch.stack([upper[t] for t in TASKS])

    eps, logits = 1e-6, torch.tensor([0.3, -0.2], dtype=torch.float64)
    columns = [
        (upper_losses_after_inner_step(logits + eps * e) - upper_losses_after_inner_step(logits - eps * e)) / (2 * eps)
        for e in torch.eye(2, dtype=torch.float64)
    ]
    numeric = torch.stack(columns, dim=1)  # row i: dF_i / d logits
    torch.testing.assert_close(hyper, numeric, rtol=1e-5, atol=1e-10)


def test_upper_direction_is_the_min_norm_point_of_the_hypergradients():
    hyper = torch.tensor([[1.0, -0.5, -0.5], [0.2, 0.6, -0.8], [-0.3, 0.9, -0.6]], dtype=torch.float64)
    direction = MOML(["a", "b", "c"]).upper_direction(hyper, BalanceInfo())
    G = (hyper @ hyper.T).numpy()
    result = minimize(
        lambda w: w @ G @ w,
        np.full(3, 1 / 3),
        method="SLSQP",
        bounds=[(0, 1)] * 3,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"ftol": 1e-15},
    )
    expected = torch.as_tensor(result.x) @ hyper
    assert expected.norm() > 0.1, "the toy's hypergradients must share a descent direction"
    torch.testing.assert_close(direction, expected, rtol=1e-4, atol=1e-6)
    assert bool(((hyper @ direction) >= direction @ direction - 1e-9).all())  # a common descent direction


def test_first_upper_step_moves_the_logits_against_the_direction():
    model, batch, val = TinyLinear(seed=0), make_batch(seed=100), make_batch(seed=200)  # agreeing upper tasks
    balancer = MOML(TASKS, weight_lr=0.01).double()
    params, names = list(model.parameters()), [n for n, _ in model.named_parameters()]
    _, ctx = make_context(model, batch, val=val)
    direction = balancer.upper_direction(
        balancer.hypergradients(task_gradients(model, batch, params), names, params, ctx), BalanceInfo()
    )
    losses, ctx = make_context(model, batch, val=val)
    info = balancer.backward(losses, ctx)
    # Adam's first step moves each coordinate by weight_lr against the sign of its gradient
    assert bool((direction.abs() > 1e-3).all())
    torch.testing.assert_close(balancer.logits, -0.01 * torch.sign(direction), rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(info.weights, torch.softmax(balancer.logits, dim=0))


def test_state_dict_round_trip():
    model, batch = TinyLinear(seed=0), make_batch(seed=100)
    first = MOML(TASKS, weight_lr=0.05)
    losses, ctx = make_context(model, batch, val=make_batch(seed=200))
    first.backward(losses, ctx)
    second = MOML(TASKS, weight_lr=0.05)
    second.load_state_dict(first.state_dict())
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value)
    assert not torch.allclose(second.logits, torch.zeros(2))


def test_bad_hyperparameter_is_a_one_line_error(cli):
    result = cli("balancer=moml", "balancer.inner_lr=0", *FAST)
    assert result.code == 2
    assert "balancer.inner_lr=0" in result.err and len(result.err.strip().splitlines()) == 1

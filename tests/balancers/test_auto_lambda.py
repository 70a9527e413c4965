"""Auto-Lambda: aligned auxiliary tasks gain weight, opposed ones lose it; exact hypergradient; state; CLI."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from mtlrun.balancers.auto_lambda import AutoLambda
from mtlrun.balancers.base import StepContext
from mtlrun.errors import ConfigError
from tests.balancers.lookahead_toys import (
    FAST,
    FAST_CNN,
    TASKS,
    TinyLinear,
    check_cli_run,
    make_batch,
    make_context,
    mse_losses,
    task_gradients,
)


class Point(nn.Module):
    """theta in R^2; each task pulls it towards its own target: L_t = 1/2 ||theta - c_t||^2."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(2, dtype=torch.float64))


TARGETS = {
    "primary": torch.tensor([1.0, 0.0], dtype=torch.float64),
    "aligned": torch.tensor([0.9, 0.2], dtype=torch.float64),  # gradient close to the primary task's
    "opposed": torch.tensor([-1.0, 0.1], dtype=torch.float64),  # gradient against it
}


def point_losses(theta: Tensor) -> dict[str, Tensor]:
    return {t: 0.5 * ((theta - c) ** 2).sum() for t, c in TARGETS.items()}


def point_context(model: Point, lr: float) -> tuple[dict[str, Tensor], StepContext]:
    ctx = StepContext(
        model=model,
        shared_params=[model.theta],
        task_params={t: [] for t in TARGETS},
        epoch=1,
        step=0,
        lr=lr,
        validation_batch=lambda: None,
        functional_losses=lambda params, batch: point_losses(params["theta"]),
    )
    return point_losses(model.theta), ctx


def test_aligned_auxiliary_weight_grows_and_opposed_shrinks():
    model = Point()
    balancer = AutoLambda(list(TARGETS), primary_tasks=["primary"], weight_init=0.1, weight_lr=0.01).double()
    for _ in range(20):
        model.theta.grad = None
        losses, ctx = point_context(model, lr=0.1)
        balancer.backward(losses, ctx)
    weights = dict(zip(TARGETS, balancer.lam.tolist()))
    assert weights["aligned"] > 0.1 + 0.1
    assert weights["opposed"] < 0.1 - 0.1
    assert weights["primary"] > 0.1


def test_hypergradient_matches_finite_differences():
    model, batch, val = TinyLinear(seed=7), make_batch(seed=7), make_batch(seed=8)
    balancer = AutoLambda(TASKS, primary_tasks=["a"], weight_init=0.3).double()
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    losses, ctx = make_context(model, batch, val=val, lr=0.05)
    jacobian = task_gradients(model, batch, params)
    hyper = balancer.hypergradient(jacobian, names, params, ctx)

    def primary_val_loss_after_step(lam: Tensor) -> float:
        train = mse_losses(model(batch[0]), batch[1])
        grads = torch.autograd.grad(sum(lam[i] * train[t] for i, t in enumerate(TASKS)), params)
        with torch.no_grad():
            ahead = {n: p - 0.05 * g for n, p, g in zip(names, params, grads)}
            outputs = torch.func.functional_call(model, ahead, (val[0],))
            return float(mse_losses(outputs, val[1])["a"])

    eps, lam = 1e-6, torch.full((2,), 0.3, dtype=torch.float64)
    numeric = torch.tensor(
        [
            (primary_val_loss_after_step(lam + eps * e) - primary_val_loss_after_step(lam - eps * e)) / (2 * eps)
            for e in torch.eye(2, dtype=torch.float64)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(hyper, numeric, rtol=1e-5, atol=1e-9)


def test_model_steps_with_the_updated_weights():
    model, batch = TinyLinear(seed=9), make_batch(seed=9)
    balancer = AutoLambda(TASKS, weight_lr=0.01).double()
    losses, ctx = make_context(model, batch, val=make_batch(seed=10))
    info = balancer.backward(losses, ctx)
    expected = torch.autograd.grad(
        sum(info.weights[i] * loss for i, loss in enumerate(mse_losses(model(batch[0]), batch[1]).values())),
        list(model.parameters()),
    )
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g)


def test_state_dict_round_trip():
    model, batch = TinyLinear(seed=11), make_batch(seed=11)
    first = AutoLambda(TASKS, weight_lr=0.01)
    losses, ctx = make_context(model, batch, val=make_batch(seed=12))
    first.backward(losses, ctx)
    second = AutoLambda(TASKS, weight_lr=0.01)
    second.load_state_dict(first.state_dict())
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value)
    assert float(second.lam_adam_steps) == 1.0
    assert not torch.allclose(second.lam, torch.full((2,), 0.1))


def test_unknown_primary_task_is_rejected():
    with pytest.raises(ConfigError, match="balancer.primary_tasks=x"):
        AutoLambda(TASKS, primary_tasks=["x"])


def test_primary_tasks_and_training_split_through_the_cli(cli):
    result = cli("balancer=auto_lambda", "balancer.primary_tasks=[left]", "balancer.upper_split=train", *FAST_CNN)
    check_cli_run(result)


def test_bad_hyperparameter_is_a_one_line_error(cli):
    result = cli("balancer=auto_lambda", "balancer.weight_lr=-0.1", *FAST)
    assert result.code == 2
    assert "balancer.weight_lr=-0.1" in result.err and len(result.err.strip().splitlines()) == 1

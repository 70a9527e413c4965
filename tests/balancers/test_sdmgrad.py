"""SDMGrad: the lambda limits of the paper (mean direction, MGDA), three batches, state and CLI."""

from __future__ import annotations

import torch

from mtlrun.balancers.sdmgrad import SDMGrad
from tests.balancers.lookahead_toys import (
    FAST,
    TASKS,
    TinyLinear,
    make_batch,
    make_context,
    shared_grad,
    task_gradients,
)


def two_task_min_norm(g1: torch.Tensor, g2: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The min-norm point of the segment [g1, g2] in closed form, and its weight on g1."""
    gamma = float(torch.clamp((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)), 0.0, 1.0))
    return gamma * g1 + (1.0 - gamma) * g2, gamma


def step_on_one_batch(balancer: SDMGrad, seed: int = 3) -> tuple[TinyLinear, torch.Tensor]:
    """One SDMGrad step whose three batches are the same (deterministic gradients)."""
    model, batch = TinyLinear(seed=seed), make_batch(seed=seed)
    jac = task_gradients(model, batch, list(model.shared.parameters()))
    losses, ctx = make_context(model, batch, extra=[batch, batch])
    balancer.backward(losses, ctx)
    return model, jac


def test_large_lambda_gives_the_mean_direction():
    model, jac = step_on_one_batch(SDMGrad(TASKS, lam=1e8))
    torch.testing.assert_close(shared_grad(model), jac.mean(0), rtol=1e-6, atol=1e-9)


def test_zero_lambda_gives_the_mgda_min_norm_direction():
    model, jac = step_on_one_batch(SDMGrad(TASKS, lam=0.0, niter=3000, w_lr=0.5, w_momentum=0.0))
    expected, gamma = two_task_min_norm(jac[0], jac[1])
    assert 0.05 < gamma < 0.95, "the toy must have conflicting gradients (interior min-norm point)"
    torch.testing.assert_close(shared_grad(model), expected, rtol=1e-5, atol=1e-8)


def test_direction_uses_the_steps_own_batch_and_weights_from_the_other_two():
    model = TinyLinear(seed=1)
    zeta, xi, xi2 = make_batch(seed=10), make_batch(seed=11), make_batch(seed=12)
    shared = list(model.shared.parameters())
    jac_zeta = task_gradients(model, zeta, shared)
    balancer = SDMGrad(TASKS, lam=0.3)
    losses, ctx = make_context(model, zeta, extra=[xi, xi2])
    info = balancer.backward(losses, ctx)
    torch.testing.assert_close(shared_grad(model), info.weights @ jac_zeta)
    reference = SDMGrad(TASKS, lam=0.3)
    expected_w = reference.solve_weights(task_gradients(model, xi, shared), task_gradients(model, xi2, shared))
    torch.testing.assert_close(balancer.w, expected_w.to(balancer.w.dtype))
    torch.testing.assert_close(info.weights, (expected_w + 0.3 / 2) / 1.3)


def test_state_dict_round_trip():
    first = SDMGrad(TASKS, lam=0.1)
    step_on_one_batch(first)
    assert not torch.allclose(first.w, torch.full((2,), 0.5, dtype=first.w.dtype))
    second = SDMGrad(TASKS, lam=0.1)
    second.load_state_dict(first.state_dict())
    torch.testing.assert_close(second.w, first.w)
    model_a, _ = step_on_one_batch(first, seed=5)
    model_b, _ = step_on_one_batch(second, seed=5)
    torch.testing.assert_close(shared_grad(model_a), shared_grad(model_b))


def test_bad_hyperparameter_is_a_one_line_error(cli):
    result = cli("balancer=sdmgrad", "balancer.lam=-1", *FAST)
    assert result.code == 2
    assert "balancer.lam=-1" in result.err and len(result.err.strip().splitlines()) == 1

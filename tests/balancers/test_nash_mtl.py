"""Nash-MTL: the bargaining condition G alpha = 1/alpha, norm capping and the failure path."""

from __future__ import annotations

import pytest
import torch

from tests.balancers.gradient_toys import build, random_jacobian, toy_step, weights


@pytest.mark.parametrize("num_tasks", [2, 3, 4, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_weights_satisfy_the_bargaining_condition(num_tasks, seed):
    J = random_jacobian(num_tasks, dim=9, seed=seed) * torch.linspace(0.01, 10, num_tasks, dtype=torch.float64)[:, None]
    alpha = weights(build("nash_mtl", num_tasks, max_norm=0.0), J)
    G = J @ J.T
    assert torch.all(alpha > 0)
    assert torch.allclose(G @ alpha, 1 / alpha, rtol=1e-8)


def test_scaling_the_gradients_scales_the_weights_inversely():
    J = random_jacobian(3, seed=2)
    alpha = weights(build("nash_mtl", max_norm=0.0), J)
    assert torch.allclose(weights(build("nash_mtl", max_norm=0.0), 4 * J), alpha / 4, rtol=1e-9)


def test_max_norm_caps_the_update_norm():
    J = 10 * random_jacobian(3, seed=3)
    free = weights(build("nash_mtl", max_norm=0.0), J)
    capped = weights(build("nash_mtl", max_norm=0.5), J)
    assert (free @ J).norm() > 0.5
    assert (capped @ J).norm().item() == pytest.approx(0.5)
    assert torch.allclose(capped / capped.sum(), free / free.sum())


def test_no_solution_warns_once_and_counts_in_extras(caplog):
    toy = toy_step(3, opposite=True)  # g1 = -g0: a non-negative combination of gradients is zero
    balancer = build("nash_mtl")
    with caplog.at_level("WARNING", logger="mtlrun.balancer"):
        info = balancer.backward(toy.losses, toy.ctx)
    assert info.extras["nash_mtl_solver_failed"] == 1
    assert sum("nash_mtl" in r.message for r in caplog.records) == 1
    assert torch.all(torch.isfinite(info.weights))

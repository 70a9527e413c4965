"""ExcessMTL: weights follow excess risks (distance to each task's optimum), not raw gradient scale."""

from __future__ import annotations

import math

import torch

from mtlrun.balancers.excess_mtl import ExcessMTL
from mtlrun.balancers.jacobian import flat
from tests.balancers.gradient_toys import hook_context
from tests.balancers.weighting_toys import Toy


def test_constant_gradients_of_any_scale_keep_equal_weights():
    excess = ExcessMTL(["a", "b", "c"], robust_step_size=0.5)
    jac = torch.tensor([[1.0, 0.0, 2.0], [100.0, -50.0, 0.0], [0.3, 0.6, 0.0]])
    for _ in range(30):
        weights = excess.weights(jac, hook_context(jac))
    # e_t(k) / e_t(0) is the same for every task when gradients do not change: nothing to rebalance
    assert torch.allclose(weights, torch.ones(3), atol=1e-4)


def test_task_that_stays_far_from_its_optimum_gains_weight():
    excess = ExcessMTL(["converging", "stuck"], robust_step_size=0.1)
    weights = []
    for k in range(20):
        jac = torch.tensor([[0.7**k, 0.7**k], [1.0, -1.0]])
        weights.append(excess.weights(jac, hook_context(jac)))
    assert weights[-1][1] > weights[-1][0]
    assert all(math.isclose(float(w.sum()), 2.0, rel_tol=1e-6) for w in weights)
    assert all(b[1] >= a[1] for a, b in zip(weights, weights[1:]))


def test_first_update_by_hand():
    excess = ExcessMTL(["a", "b"], robust_step_size=0.2)
    g0 = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    g1 = torch.tensor([[3.0, 4.0], [0.5, 0.0]])
    excess.weights(g0, hook_context(g0))
    weights = excess.weights(g1, hook_context(g1))
    e0 = (g0**2 / torch.sqrt(g0**2 + 1e-7)).sum(1)
    e1 = (g1**2 / torch.sqrt(g0**2 + g1**2 + 1e-7)).sum(1)
    raw = torch.exp(0.2 * e1 / e0)
    assert torch.allclose(weights, 2 * raw / raw.sum())


def test_every_parameter_gets_the_weighted_gradient():
    toy = Toy()
    excess = ExcessMTL(toy.tasks)
    toy.step(excess, step=0)  # first step only records e(0)
    losses, ctx = toy.forward(step=1)
    info = excess.backward(losses, ctx)
    got = toy.grads()
    again, _ = toy.forward()
    sum(w * again[t] for w, t in zip(info.weights, toy.tasks)).backward()
    for name, grad in toy.grads().items():
        assert torch.allclose(got[name], grad, rtol=1e-5, atol=1e-7), name
    rows = []
    for task in toy.tasks:
        again, _ = toy.forward()
        again[task].backward()
        rows.append(flat([p.grad for p in toy.shared], toy.shared))
    assert torch.allclose(info.jacobian, torch.stack(rows), atol=1e-6)


def test_rep_grad_and_update_every_reach_the_encoder():
    toy = Toy()
    excess = ExcessMTL(toy.tasks, rep_grad=True, update_every=2)
    assert excess.needs_representation
    for step in range(4):
        info = toy.step(excess, step=step, lr=0.0)
        got = toy.grads()
        again, _ = toy.forward()
        sum(w * again[t] for w, t in zip(info.weights, toy.tasks)).backward()
        for name, grad in toy.grads().items():
            assert torch.allclose(got[name], grad, rtol=1e-5, atol=1e-7), (step, name)

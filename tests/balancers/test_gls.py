"""Geometric loss strategy: the gradient of (prod L_t)^(1/T)."""

from __future__ import annotations

import torch

from mtlrun.balancers.gls import GeometricLossStrategy
from tests.balancers.weighting_toys import Toy


def test_gradient_is_geometric_mean_times_mean_relative_gradient():
    toy = Toy()
    gls = GeometricLossStrategy(toy.tasks)
    losses, ctx = toy.forward()
    info = gls.backward(losses, ctx)
    got = toy.grads()
    T = len(toy.tasks)
    values = torch.stack([losses[t].detach() for t in toy.tasks])
    geometric = values.prod() ** (1 / T)
    expected: dict[str, torch.Tensor] = {}
    for task, value in zip(toy.tasks, values):
        task_losses, _ = toy.forward()
        task_losses[task].backward()
        for name, grad in toy.grads().items():
            expected[name] = expected.get(name, torch.zeros_like(grad)) + grad / value
    for name, grad in expected.items():
        assert torch.allclose(got[name], geometric / T * grad, rtol=1e-4, atol=1e-7), name
    assert torch.allclose(info.weights, geometric / (T * values))


def test_scaling_one_loss_does_not_change_the_direction():
    toy = Toy()
    gls = GeometricLossStrategy(toy.tasks)
    losses, ctx = toy.forward()
    gls.backward(losses, ctx)
    base = torch.cat([g.flatten() for g in toy.grads().values()])
    losses, ctx = toy.forward()
    losses["b"] = 100.0 * losses["b"]
    gls.backward(losses, ctx)
    scaled = torch.cat([g.flatten() for g in toy.grads().values()])
    cosine = torch.nn.functional.cosine_similarity(base, scaled, dim=0)
    assert cosine > 1 - 1e-5

"""Uncertainty weighting: the learned log-variances find the closed-form optimum log L_t."""

from __future__ import annotations

import torch

from mtlrun.balancers.uncertainty import UncertaintyWeighting
from tests.balancers.weighting_toys import Toy, bare_context, scalar_losses


def test_log_variances_converge_to_log_of_constant_losses():
    values = [0.2, 1.0, 7.5]
    uw = UncertaintyWeighting(["t0", "t1", "t2"])
    optimizer = torch.optim.Adam(uw.parameters(), lr=0.1)
    for step in range(600):
        optimizer.zero_grad()
        uw.backward(scalar_losses(values, requires_grad=False), bare_context(step=step))
        optimizer.step()
    expected = torch.log(torch.tensor(values))
    assert torch.allclose(uw.log_variances.detach(), expected, atol=1e-3)
    info = uw.backward(scalar_losses(values), bare_context())
    assert torch.allclose(info.weights, 1 / torch.tensor(values), rtol=1e-2)


def test_model_gradient_is_the_uncertainty_weighted_sum():
    toy = Toy()
    uw = UncertaintyWeighting(toy.tasks)
    with torch.no_grad():
        uw.log_variances.copy_(torch.tensor([-1.0, 0.5, 2.0]))
    losses, ctx = toy.forward()
    info = uw.backward(losses, ctx)
    got = toy.grads()
    losses, _ = toy.forward()
    weights = torch.exp(-torch.tensor([-1.0, 0.5, 2.0]))
    sum(w * losses[t] for w, t in zip(weights, toy.tasks)).backward()
    for name, grad in toy.grads().items():
        assert torch.allclose(got[name], grad, atol=1e-6), name
    assert torch.allclose(info.weights, weights)
    # d/ds_t [exp(-s_t) L_t + s_t] = 1 - exp(-s_t) L_t
    values = torch.stack([losses[t].detach() for t in toy.tasks])
    assert torch.allclose(uw.log_variances.grad, 1 - weights * values, atol=1e-6)

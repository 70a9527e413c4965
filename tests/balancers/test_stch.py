"""Smooth Tchebycheff scalarisation: the smooth max, its softmax weights, warm-up and the nadir point."""

from __future__ import annotations

import math

import torch

from mtlrun.balancers.stch import SmoothTchebycheff, smooth_tchebycheff
from tests.balancers.weighting_toys import Toy


def test_smooth_value_approaches_the_max_as_mu_vanishes():
    values = torch.tensor([0.3, -1.2, 0.25, 0.1])
    gaps = [float(smooth_tchebycheff(values, mu) - values.max()) for mu in (1.0, 0.1, 0.01, 0.001)]
    for mu, gap in zip((1.0, 0.1, 0.01, 0.001), gaps):
        assert 0 <= gap <= mu * math.log(4) + 1e-7
    assert all(b < a for a, b in zip(gaps, gaps[1:]))
    assert gaps[-1] < 1e-3


def test_gradient_of_the_smooth_value_is_a_softmax():
    values = torch.tensor([0.3, -1.2, 0.25], requires_grad=True)
    smooth_tchebycheff(values, 0.2).backward()
    assert torch.allclose(values.grad, torch.softmax(values.detach() / 0.2, 0))
    assert math.isclose(float(values.grad.sum()), 1.0, rel_tol=1e-6)


def test_warmup_nadir_and_scalarised_phase():
    toy = Toy()
    stch = SmoothTchebycheff(toy.tasks, mu=0.5, warmup_epochs=1)
    # epoch 1, warm-up: the gradient of sum_t log L_t
    losses, ctx = toy.forward(epoch=1)
    info = stch.backward(losses, ctx)
    got = toy.grads()
    again, _ = toy.forward()
    sum(torch.log(again[t]) for t in toy.tasks).backward()
    for name, grad in toy.grads().items():
        assert torch.allclose(got[name], grad, rtol=1e-5, atol=1e-7)
    assert torch.equal(info.weights, torch.ones(3))
    # epoch 2: the nadir point is the epoch's average loss
    for step in range(3):
        toy.step(stch, epoch=2, step=step + 1, lr=0.05)
    # epoch 3: T * mu * logsumexp(log(L / N) / mu)
    losses, ctx = toy.forward(epoch=3)
    values = torch.stack([losses[t].detach() for t in toy.tasks])
    info = stch.backward(losses, ctx)
    got = toy.grads()
    nadir = stch.nadir.clone()
    normalised = torch.log(values / nadir)
    soft = torch.softmax(normalised / 0.5, 0)
    assert torch.allclose(info.weights, 3 * soft, rtol=1e-5)
    assert math.isclose(float(info.weights.sum()), 3.0, rel_tol=1e-6)
    again, _ = toy.forward()
    (3 * sum(s * again[t] / v for s, t, v in zip(soft, toy.tasks, values))).backward()
    for name, grad in toy.grads().items():
        assert torch.allclose(got[name], grad, rtol=1e-4, atol=1e-7)
    assert stch._has_nadir and stch._nadir_steps == 3
    assert torch.all(nadir > 0)


def test_nadir_is_the_mean_loss_of_the_estimation_epoch():
    toy = Toy()
    stch = SmoothTchebycheff(toy.tasks, warmup_epochs=0)
    recorded = []
    for step in range(4):
        losses, ctx = toy.forward(epoch=1, step=step)
        recorded.append(torch.stack([losses[t].detach() for t in toy.tasks]))
        stch.backward(losses, ctx)
        with torch.no_grad():
            for p in toy.model.parameters():
                p -= 0.05 * p.grad
    losses, ctx = toy.forward(epoch=2, step=4)
    stch.backward(losses, ctx)
    assert torch.allclose(stch.nadir, torch.stack(recorded).mean(0))

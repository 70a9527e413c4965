"""Random loss weighting: weights on the simplex, fresh every step, reproducible from the seed."""

from __future__ import annotations

import pytest
import torch

from mtlrun.balancers.rlw import RandomLossWeighting
from tests.balancers.weighting_toys import Toy, bare_context, scalar_losses


def draw(rlw: RandomLossWeighting, steps: int) -> torch.Tensor:
    losses = [1.0, 2.0, 3.0]
    return torch.stack([rlw.backward(scalar_losses(losses), bare_context(step=s)).weights for s in range(steps)])


@pytest.mark.parametrize("distribution", ["normal", "dirichlet"])
def test_weights_sum_to_one_vary_and_reproduce(distribution):
    rlw = RandomLossWeighting(["t0", "t1", "t2"], distribution=distribution)
    torch.manual_seed(3)
    first = draw(rlw, 20)
    torch.manual_seed(3)
    again = draw(rlw, 20)
    torch.manual_seed(4)
    other = draw(rlw, 20)
    assert torch.allclose(first.sum(1), torch.ones(20))
    assert (first > 0).all()
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert first.std(0).min() > 0.01  # random across steps, not a constant


def test_normal_weights_are_a_softmax_of_standard_normal_samples():
    rlw = RandomLossWeighting(["t0", "t1", "t2"])
    torch.manual_seed(0)
    got = draw(rlw, 1)[0]
    torch.manual_seed(0)
    assert torch.allclose(got, torch.softmax(torch.randn(3), 0))


def test_model_gradient_uses_the_drawn_weights():
    toy = Toy()
    rlw = RandomLossWeighting(toy.tasks)
    losses, ctx = toy.forward()
    info = rlw.backward(losses, ctx)
    got = toy.grads()
    losses, _ = toy.forward()
    sum(w * losses[t] for w, t in zip(info.weights, toy.tasks)).backward()
    for name, grad in toy.grads().items():
        assert torch.allclose(got[name], grad, atol=1e-6), name

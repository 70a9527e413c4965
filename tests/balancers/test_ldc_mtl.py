"""LDC-MTL: one backward of the weighted loss plus the discrepancy penalty, weights learned with the model."""

from __future__ import annotations

import pytest
import torch

from mtlrun.balancers.ldc_mtl import LDCMTL
from mtlrun.errors import ConfigError
from tests.balancers.weighting_toys import Toy, bare_context, scalar_losses


def paper_objective(losses: torch.Tensor, logits: torch.Tensor, ratios: torch.Tensor, lam: float) -> torch.Tensor:
    """sum_t w_t l_t / sg(sum w) + lam sum_t |w_t l_t - w_{t+1} l_{t+1}|, l = L / r, w = sigmoid(W)."""
    w = torch.sigmoid(logits)
    weighted = w * losses / ratios
    return weighted.sum() / w.sum().detach() + lam * (weighted[:-1] - weighted[1:]).abs().sum()


def test_model_and_weight_gradients_are_those_of_the_penalised_objective():
    toy = Toy()
    balancer = LDCMTL(toy.tasks, lam=0.3)
    with torch.no_grad():
        balancer.logits.copy_(torch.tensor([0.2, -0.4, 1.1]))
    losses, ctx = toy.forward()
    values = torch.stack([losses[t].detach() for t in toy.tasks])
    info = balancer.backward(losses, ctx)
    got_model, got_logits = toy.grads(), balancer.logits.grad.clone()

    ratios = values / values.min()  # the first step fixes r_t = L_t(0) / min_s L_s(0)
    assert torch.allclose(balancer.initial_losses, values)
    logits = torch.tensor([0.2, -0.4, 1.1], requires_grad=True)
    losses, _ = toy.forward()
    stacked = torch.stack([losses[t] for t in toy.tasks])
    paper_objective(stacked, logits, ratios, 0.3).backward()
    for name, grad in toy.grads().items():
        assert torch.allclose(got_model[name], grad, rtol=1e-5, atol=1e-7), name
    assert torch.allclose(got_logits, logits.grad, rtol=1e-5, atol=1e-8)
    # the reported weights are d objective / d L_t
    leaf = values.clone().requires_grad_(True)
    (effective,) = torch.autograd.grad(paper_objective(leaf, logits.detach(), ratios, 0.3), leaf)
    assert torch.allclose(info.weights, effective, rtol=1e-5)


def test_the_penalty_moves_the_weights_to_shrink_the_discrepancy():
    """The upper level: the part of W's gradient that lambda adds is a descent direction of the discrepancy."""
    values = [1.0, 4.0, 2.0]

    def logit_gradient(lam: float) -> torch.Tensor:
        balancer = LDCMTL(["t0", "t1", "t2"], lam=lam, loss_ratios=False)
        balancer.backward(scalar_losses(values), bare_context())
        return balancer.logits.grad.clone()

    def discrepancy(logits: torch.Tensor) -> float:
        weighted = torch.sigmoid(logits) * torch.tensor(values)
        return float((weighted[:-1] - weighted[1:]).abs().sum())

    penalty = logit_gradient(2.0) - logit_gradient(0.0)
    start = torch.ones(3)
    assert discrepancy(start - 0.01 * penalty) < discrepancy(start) - 1e-4
    assert discrepancy(start + 0.01 * penalty) > discrepancy(start)


def test_later_steps_keep_the_first_loss_ratios():
    balancer = LDCMTL(["t0", "t1"])
    balancer.backward(scalar_losses([2.0, 8.0]), bare_context())
    info = balancer.backward(scalar_losses([1.0, 1.0]), bare_context(step=1))
    assert torch.allclose(balancer.initial_losses, torch.tensor([2.0, 8.0]))
    w = torch.sigmoid(balancer.logits.detach())
    # normalised losses 1 and 1/4: the discrepancy's sign is known, so the weights have a closed form
    ratios = torch.tensor([1.0, 4.0])
    expected = w / (ratios * w.sum()) + 0.01 * torch.tensor([1.0, -1.0]) * w / ratios
    assert torch.allclose(info.weights, expected, rtol=1e-5)


def test_lam_must_be_non_negative():
    with pytest.raises(ConfigError, match=r"balancer\.lam=-1"):
        LDCMTL(["a", "b"], lam=-1.0)

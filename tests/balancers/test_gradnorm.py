"""GradNorm: weighted gradient norms settle at mean(G) * r_t^alpha; weights sum to T."""

from __future__ import annotations

import math

import torch
from torch import nn

from mtlrun.balancers.base import StepContext
from mtlrun.balancers.gradnorm import GradNorm, last_shared_parameters
from tests.balancers.weighting_toys import Toy


class FixedNorms(nn.Module):
    """L_t = a_t * W_t + b_t with W = 1: ||grad_W L_t|| = a_t, and L_t is set through b_t."""

    def __init__(self, scales: list[float]) -> None:
        super().__init__()
        self.scales = torch.tensor(scales)
        self.W = nn.Parameter(torch.ones(len(scales)))

    def losses(self, values: list[float]) -> dict[str, torch.Tensor]:
        offsets = torch.tensor(values) - self.scales
        out = self.scales * self.W + offsets
        return {f"t{i}": out[i] for i in range(len(values))}


def train_weights(scales: list[float], initial: list[float], later: list[float], alpha: float) -> torch.Tensor:
    """Run GradNorm with fixed gradient norms ``scales`` and fixed loss ratios ``later / initial``; return
    the weights averaged over the last steps (the sign-driven updates oscillate around the fixed point)."""
    model = FixedNorms(scales)
    gradnorm = GradNorm([f"t{i}" for i in range(len(scales))], alpha=alpha, lr=0.01)
    tail = []
    for step in range(800):
        model.zero_grad()
        ctx = StepContext(model=model, shared_params=[model.W], task_params={}, epoch=1, step=step)
        info = gradnorm.backward(model.losses(initial if step == 0 else later), ctx)
        assert math.isclose(float(gradnorm.task_weights.sum()), len(scales), rel_tol=1e-5)
        if step >= 500:
            tail.append(gradnorm.task_weights.clone())
    # the model step used that step's weights: grad W_t = w_t a_t
    assert torch.allclose(model.W.grad, info.weights * torch.tensor(scales), rtol=1e-5)
    return torch.stack(tail).mean(0)


def test_weighted_gradient_norms_reach_the_gradnorm_targets():
    # alpha = 1: mean(r) = 1, so G_t = mean(G) r_t is reachable for every task at once
    scales, initial, later = [10.0, 1.0, 0.1], [2.0, 1.0, 4.0], [1.0, 0.8, 1.0]
    w = train_weights(scales, initial, later, alpha=1.0)
    assert math.isclose(float(w.sum()), 3.0, rel_tol=1e-5)
    norms = w * torch.tensor(scales)
    ratio = torch.tensor(later) / torch.tensor(initial)
    target = norms.mean() * (ratio / ratio.mean())
    assert torch.allclose(norms, target, rtol=0.01)


def test_equal_training_rates_give_equal_gradient_norms():
    scales = [10.0, 1.0, 0.1]
    w = train_weights(scales, [2.0, 1.0, 4.0], [1.0, 0.5, 2.0], alpha=1.5)
    norms = w * torch.tensor(scales)
    assert torch.allclose(norms, norms.mean().expand(3), rtol=0.01)
    assert math.isclose(float(w.sum()), 3.0, rel_tol=1e-5)


def test_last_shared_layer_is_the_final_encoder_stage():
    toy = Toy()
    chosen = last_shared_parameters(toy.model, toy.shared)
    assert [id(p) for p in chosen] == [id(p) for p in toy.model.encoder.stages[-1].parameters()]


def test_model_gradient_uses_the_step_weights_and_rep_grad_reaches_the_encoder():
    toy = Toy()
    gradnorm = GradNorm(toy.tasks, rep_grad=True, update_every=2)
    assert gradnorm.needs_representation
    used = []
    for step in range(5):
        info = toy.step(gradnorm, step=step, lr=0.0)
        used.append(info.weights)
        got = toy.grads()
        again, _ = toy.forward()
        sum(w * again[t] for w, t in zip(info.weights, toy.tasks)).backward()
        for name, grad in toy.grads().items():
            assert torch.allclose(got[name], grad, rtol=1e-5, atol=1e-7), (step, name)
    # weights move only after update steps (0, 2, 4): the weights used at steps 1 and 2 are equal
    assert torch.equal(used[0], torch.ones(3))
    assert not torch.allclose(used[1], used[0]) and torch.equal(used[1], used[2])
    assert math.isclose(float(gradnorm.task_weights.sum()), 3.0, rel_tol=1e-5)

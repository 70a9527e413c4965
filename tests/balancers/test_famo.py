"""FAMO: balanced log-loss improvement, the official update rule, and the two ways to get L(theta_k+1)."""

from __future__ import annotations

import torch

from mtlrun.balancers.famo import FAMO
from tests.balancers.weighting_toys import Toy, bare_context, scalar_losses


def feed(famo: FAMO, trajectory: list[list[float]]) -> list[torch.Tensor]:
    return [famo.backward(scalar_losses(v), bare_context(step=k)).weights for k, v in enumerate(trajectory)]


def test_the_task_whose_loss_falls_slowest_gains_weight():
    famo = FAMO(["t0", "t1"])  # t0 falls fast, t1 slowly
    trajectory = [[0.9**k, 0.99**k] for k in range(60)]
    feed(famo, trajectory)
    z = torch.softmax(famo.logits, 0)
    assert z[1] > 0.6 > 0.4 > z[0]
    # and the logit gap grows monotonically while the imbalance persists
    famo = FAMO(["t0", "t1"])  # t0 falls fast, t1 slowly
    gaps = []
    for k, values in enumerate(trajectory[:20]):
        famo.backward(scalar_losses(values), bare_context(step=k))
        gaps.append(float(famo.logits[1] - famo.logits[0]))
    assert all(b > a for a, b in zip(gaps[1:], gaps[2:]))


def test_logits_follow_adam_with_weight_decay_on_the_softmax_jacobian():
    w_lr, gamma = 0.025, 1e-3
    famo = FAMO(["t0", "t1", "t2"], w_lr=w_lr, gamma=gamma)
    gen = torch.Generator().manual_seed(0)
    trajectory = (torch.rand(15, 3, generator=gen) + 0.1).tolist()
    feed(famo, trajectory)
    xi = torch.zeros(3, requires_grad=True)
    reference = torch.optim.Adam([xi], lr=w_lr, weight_decay=gamma)
    for before, after in zip(trajectory, trajectory[1:]):
        delta = torch.log(torch.tensor(before) + 1e-8) - torch.log(torch.tensor(after) + 1e-8)
        (grad,) = torch.autograd.grad(torch.softmax(xi, 0), xi, grad_outputs=delta)
        xi.grad = grad
        reference.step()
    assert torch.allclose(famo.logits, xi.detach(), atol=1e-6)


def test_model_gradient_is_that_of_the_famo_objective():
    toy = Toy()
    famo = FAMO(toy.tasks)
    with torch.no_grad():
        famo.logits.copy_(torch.tensor([0.3, -0.2, 0.5]))
    famo._has_previous = False  # no logit update at this step
    losses, ctx = toy.forward()
    info = famo.backward(losses, ctx)
    got = toy.grads()
    losses, _ = toy.forward()
    values = torch.stack([losses[t] for t in toy.tasks])
    z = torch.softmax(torch.tensor([0.3, -0.2, 0.5]), 0)
    gap = values + 1e-8
    c = (z / gap.detach()).sum()
    (z * gap.log() / c).sum().backward()  # sum_t c z_t log(L_t - L*_t), c = 1 / sum(z / gap)
    for name, grad in toy.grads().items():
        assert torch.allclose(got[name], grad, rtol=1e-5, atol=1e-7), name
    assert torch.isclose(info.weights.sum(), torch.tensor(1.0))


def test_same_batch_update_reevaluates_the_previous_batch():
    calls = []

    def recompute(batch):
        calls.append(batch)
        return {"a": torch.tensor(0.5), "b": torch.tensor(2.0)}

    famo = FAMO(["a", "b"], xi_update="same_batch")
    ctx = bare_context(step=0)
    ctx.batch, ctx.compute_losses = "batch-0", recompute
    famo.backward({"a": torch.tensor(1.0, requires_grad=True), "b": torch.tensor(2.0, requires_grad=True)}, ctx)
    ctx = bare_context(step=1)
    ctx.batch, ctx.compute_losses = "batch-1", recompute
    famo.backward({"a": torch.tensor(9.0, requires_grad=True), "b": torch.tensor(9.0, requires_grad=True)}, ctx)
    assert calls == ["batch-0"]
    # task a improved (1 -> 0.5), b did not: b gains weight; the next batch's losses (9, 9) were not used
    assert famo.logits[1] > famo.logits[0]
    reference = FAMO(["a", "b"])
    reference.update_logits(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 2.0]))
    assert torch.allclose(famo.logits, reference.logits)

"""DSelect-k: the smooth-step function, binary selection and convergence to at most k experts."""

from __future__ import annotations

import pytest
import torch

from mtlrun.models.arch.dselect_k import DSelectKGate, smooth_step
from tests.models.helpers import IMAGE, batch, build, losses


@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
def test_smooth_step_is_exactly_binary_outside_the_cubic_region(gamma):
    outside_low = torch.tensor([-gamma / 2, -gamma / 2 - 1e-4, -gamma, -10.0 * gamma])
    outside_high = torch.tensor([gamma / 2, gamma / 2 + 1e-4, gamma, 10.0 * gamma])
    assert torch.equal(smooth_step(outside_low, gamma), torch.zeros(4))
    assert torch.equal(smooth_step(outside_high, gamma), torch.ones(4))
    inside = torch.linspace(-gamma / 2 * 0.999, gamma / 2 * 0.999, 101)
    values = smooth_step(inside, gamma)
    assert ((values > 0) & (values < 1)).all()
    assert (values.diff() > 0).all()  # increasing
    assert smooth_step(torch.tensor(0.0), gamma).item() == pytest.approx(0.5)
    # continuous at the edges, with zero slope there
    edge = torch.tensor([-gamma / 2 + 1e-6, gamma / 2 - 1e-6], dtype=torch.float64, requires_grad=True)
    out = smooth_step(edge, gamma)
    assert out.detach().tolist() == pytest.approx([0.0, 1.0], abs=1e-6)
    (grad,) = torch.autograd.grad(out.sum(), edge)
    assert grad.abs().max().item() < 1e-4


def _force(gate: DSelectKGate, experts: list[int], large: float = 5.0) -> None:
    """Point selector i at expert ``experts[i]`` with logits far outside [-gamma/2, gamma/2]."""
    with torch.no_grad():
        bits = gate.codes[experts]  # (k, m)
        z = (2 * bits - 1) * large * gate.gamma
        if gate.per_example:
            gate.z_logits.weight.zero_()
            gate.z_logits.bias.copy_(z.reshape(-1))
        else:
            gate.z.copy_(z)


@pytest.mark.parametrize("per_example", [True, False])
@pytest.mark.parametrize(("num_experts", "k", "chosen"), [(8, 2, [3, 6]), (5, 3, [0, 4, 4]), (4, 1, [2])])
def test_converged_selectors_pick_at_most_k_experts(per_example, num_experts, k, chosen):
    gate = DSelectKGate(IMAGE, num_experts, k=k, gamma=1.0, per_example=per_example)
    x, _ = batch()
    before = gate(x)
    assert (before > 0).all()  # at initialisation every expert has weight
    _force(gate, chosen)
    weights = gate(x)
    nonzero = weights > 0
    assert (nonzero.sum(-1) <= k).all()
    assert nonzero[:, sorted(set(chosen))].all() and nonzero.sum(-1).eq(len(set(chosen))).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(x.shape[0]))


def test_unreachable_code_penalty():
    gate = DSelectKGate(IMAGE, 3, k=2, gamma=1.0, per_example=False)  # code 11 (expert 3) does not exist
    x, _ = batch()
    _force(gate, [0, 2])
    entropy, reach = gate.regularisers(x)
    assert reach.item() == 0.0 and entropy.item() == pytest.approx(0.0, abs=1e-4)
    with torch.no_grad():
        gate.z.zero_()  # every selector at 1/4 per code: 3/4 of its weight reachable
    entropy, reach = gate.regularisers(x)
    assert reach.item() == pytest.approx(2 * (4 / 3 - 1))
    assert entropy.item() > 1.0


def test_extra_losses_report_the_regularisers():
    model = build("dselect_k", num_experts=3, k=2, entropy_reg=0.1).train()
    assert model.extra_losses() == {}  # nothing before the first training forward
    x, targets = batch()
    model(x)
    extra = model.extra_losses()
    assert set(extra) == {"dselect_k_entropy", "dselect_k_unreachable"}
    assert all(v.requires_grad and v.item() > 0 for v in extra.values())
    # separate graph: backward of the extras first, then of the task losses, like the trainer
    task_losses = losses(model, x, targets)
    torch.stack(list(extra.values())).sum().backward()
    torch.stack(list(task_losses.values())).sum().backward()
    assert build("dselect_k", num_experts=4, k=2).extra_losses() == {}


def test_training_with_entropy_regularisation_converges_to_k_experts():
    """A few hundred steps on a toy problem leave each task with at most k experts of non-zero weight."""
    torch.manual_seed(0)
    k = 2
    model = build("dselect_k", num_experts=4, k=k, gamma=1.0, entropy_reg=0.1, per_example=False).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, targets = batch(n=64)
    for _ in range(200):
        optimizer.zero_grad()
        model(x)
        objective = sum(losses(model, x, targets).values()) + sum(model.extra_losses().values())
        objective.backward()
        optimizer.step()
    for t, weights in model.gates(x).items():
        assert ((weights > 0).sum(-1) <= k).all(), (t, weights[0])

"""Dynamic weight average: weights from the ratio of the last two epochs' average losses."""

from __future__ import annotations

import math

import torch

from mtlrun.balancers.dwa import DynamicWeightAverage
from tests.balancers.weighting_toys import bare_context, scalar_losses


def run_epochs(dwa: DynamicWeightAverage, epochs: list[list[list[float]]]) -> list[torch.Tensor]:
    """Feed per-epoch lists of per-step losses; return the weights used at each epoch's first step."""
    first = []
    step = 0
    for epoch, steps in enumerate(epochs, start=1):
        for i, values in enumerate(steps):
            info = dwa.backward(scalar_losses(values), bare_context(epoch=epoch, step=step))
            step += 1
            if i == 0:
                first.append(info.weights)
    return first


def test_hand_computed_weights_from_a_known_loss_history():
    dwa = DynamicWeightAverage(["t0", "t1"], temperature=2.0)
    history = [
        [[1.0, 2.0], [3.0, 2.0]],  # epoch 1: averages (2, 2)
        [[1.0, 2.0], [1.0, 2.0]],  # epoch 2: averages (1, 2)
        [[0.5, 1.0], [0.5, 1.0]],  # epoch 3: averages (0.5, 1)
        [[0.1, 0.1]],
    ]
    weights = run_epochs(dwa, history)
    assert torch.equal(weights[0], torch.ones(2)) and torch.equal(weights[1], torch.ones(2))
    # epoch 3: r = (1/2, 2/2) -> w = 2 softmax(r / 2)
    e1, e2 = math.exp(0.5 / 2), math.exp(1.0 / 2)
    assert torch.allclose(weights[2], torch.tensor([2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)]))
    # epoch 4: r = (0.5/1, 1/2) equal -> equal weights
    assert torch.allclose(weights[3], torch.ones(2))
    for w in weights:
        assert math.isclose(float(w.sum()), 2.0, rel_tol=1e-6)


def test_weights_are_constant_within_an_epoch_and_sum_to_the_task_count():
    dwa = DynamicWeightAverage(["t0", "t1", "t2"], temperature=0.5)
    seen = []
    step = 0
    for epoch in range(1, 5):
        for _ in range(3):
            values = [1.0 / epoch, 2.0 / epoch**2, 1.0]
            seen.append((epoch, dwa.backward(scalar_losses(values), bare_context(epoch, step)).weights))
            step += 1
    for epoch in range(1, 5):
        per_epoch = [w for e, w in seen if e == epoch]
        assert all(torch.equal(per_epoch[0], w) for w in per_epoch)
        assert math.isclose(float(per_epoch[0].sum()), 3.0, rel_tol=1e-6)
    # the task whose loss fell slowest (t2, constant) gets the largest weight
    assert int(seen[-1][1].argmax()) == 2

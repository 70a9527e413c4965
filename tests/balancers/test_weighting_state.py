"""Checkpoints of the adaptive loss-weighting balancers: a resumed balancer continues identically."""

from __future__ import annotations

import io

import pytest
import torch

from mtlrun.balancers import BALANCERS
from tests.balancers.weighting_toys import Toy

#: (name, options) of every balancer with state, in the variants whose state differs
STATEFUL = [
    ("uw", {}),
    ("dwa", {}),
    ("rlw", {}),
    ("famo", {}),
    ("famo", {"xi_update": "same_batch"}),
    ("db_mtl", {"beta_sigma": 0.5}),
    ("stch", {"warmup_epochs": 0}),
    ("excess_mtl", {}),
    ("excess_mtl", {"rep_grad": True, "update_every": 2}),
    ("gradnorm", {}),
    ("gradnorm", {"rep_grad": True, "update_every": 2}),
]

#: (epoch, step) of the steps run before and after the checkpoint; epochs change on both sides
BEFORE = [(1, 0), (1, 1), (2, 2), (2, 3), (3, 4)]
AFTER = [(3, 5), (4, 6), (4, 7), (5, 8), (6, 9)]


def through_checkpoint(state: dict) -> dict:
    """Save and load as the run folder's checkpoint does (weights_only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


IDS = [f"{n}-{'-'.join(map(str, o.values()))}" for n, o in STATEFUL]


@pytest.mark.parametrize(("name", "options"), STATEFUL, ids=IDS)
def test_state_dict_round_trip_resumes_identically(name, options):
    toy = Toy()
    first = BALANCERS.build(name, options, tasks=toy.tasks)
    for epoch, step in BEFORE:
        toy.step(first, epoch, step)
    resumed = BALANCERS.build(name, options, tasks=toy.tasks)
    resumed.load_state_dict(through_checkpoint(first.state_dict()))
    twin = Toy()
    twin.model.load_state_dict(toy.model.state_dict())
    if name == "famo" and options:  # the previous batch is not checkpointed: the first update is skipped
        first._previous_batch = None
    for epoch, step in AFTER:
        torch.manual_seed(step)
        a = toy.step(first, epoch, step)
        torch.manual_seed(step)
        b = twin.step(resumed, epoch, step)
        assert torch.equal(a.weights, b.weights), (epoch, step)
        for key, grad in toy.grads().items():
            assert torch.equal(grad, twin.grads()[key]), (epoch, step, key)
    for key, value in first.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_fresh_balancer_state_differs_from_a_trained_one():
    """The round trip above is meaningful: training changes each method's state."""
    for name, options in STATEFUL:
        if name == "rlw":
            continue
        toy = Toy()
        trained = BALANCERS.build(name, options, tasks=toy.tasks)
        for epoch, step in BEFORE:
            toy.step(trained, epoch, step)
        if name == "uw":  # its state is learned by the model optimiser, which the toy does not run
            continue
        fresh = BALANCERS.build(name, options, tasks=toy.tasks)
        differs = [
            key
            for key, value in trained.state_dict().items()
            if isinstance(value, torch.Tensor)
            and (value.shape != fresh.state_dict()[key].shape or not torch.equal(value, fresh.state_dict()[key]))
        ]
        extra = trained.get_extra_state() != fresh.get_extra_state() if hasattr(trained, "get_extra_state") else False
        assert differs or extra, name

"""Shared/task-specific parameter partition of every architecture, checked with real gradients.

Gradient balancers take the task Jacobian on ``shared_parameters()`` and give each task its own
parameters' plain gradient; that is only right if a task-specific parameter gets gradient from
its task alone, and every parameter is listed exactly once.
"""

from __future__ import annotations

import pytest
import torch

from mtlrun.models import ARCHS
from tests.models.helpers import batch, build, build_funnel, funnel_batch, funnel_losses, losses

CASES = [
    ("hps", {}),
    ("shared_bottom", {}),
    ("single_task", {}),
    ("mmoe", {"num_experts": 2}),
    ("cgc", {"num_shared_experts": 1, "num_task_experts": 2}),
    ("ple", {"num_shared_experts": 1, "num_task_experts": 1}),
    ("ple", {"num_shared_experts": 2, "num_task_experts": 0}),
    ("dselect_k", {"num_experts": 3, "k": 2}),
    ("dselect_k", {"num_experts": 4, "k": 1, "per_example": False}),
    ("mtan", {}),
    ("cross_stitch", {}),
    ("soft_sharing", {}),
    ("soft_sharing", {"penalty": "trace"}),
    ("branched", {}),
    ("branched", {"branch_at": {"a+b": 1, "a": 2}}),
    ("branched", {"branch_at": {"c": 0}}),
    ("learn_to_branch", {}),
    ("learn_to_branch", {"widths": [1, 3, 2]}),
]
IDS = [f"{arch}-{'-'.join(f'{k}={v}' for k, v in opts.items())}" for arch, opts in CASES]
#: architectures of sequential binary tasks (click -> conversion): built on a click, a conversion
#: and a regression task; the click task of ESMM owns nothing (its tower also makes pCTCVR)
FUNNEL_CASES = [
    ("esmm", {}),
    ("esmm", {"ctr_task": "buy", "cvr_task": "click"}),
    ("aitm", {}),
    ("aitm", {"calibration": 0.0}),
]
FUNNEL_IDS = [f"{arch}-{'-'.join(f'{k}={v}' for k, v in opts.items())}" for arch, opts in FUNNEL_CASES]


def test_every_registered_arch_is_covered():
    assert set(ARCHS.names()) <= {arch for arch, _ in CASES + FUNNEL_CASES}


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
@pytest.mark.parametrize(("arch", "options"), FUNNEL_CASES, ids=FUNNEL_IDS)
def test_funnel_partition_matches_gradients(arch, options, encoder):
    model = build_funnel(arch, encoder, **options)
    x, targets = funnel_batch()
    check_partition(model, funnel_losses(model, x, targets), every_task_owns=False)


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
@pytest.mark.parametrize(("arch", "options"), CASES, ids=IDS)
def test_partition_matches_gradients(arch, options, encoder):
    model = build(arch, encoder, **options)
    x, targets = batch()
    check_partition(model, losses(model, x, targets))


def check_partition(model, task_losses, every_task_owns: bool = True) -> None:
    params = list(model.parameters())
    shared = model.shared_parameters()
    own = {t: model.task_parameters(t) for t in model.task_names}

    # complete and disjoint
    listed = [id(p) for p in shared] + [id(p) for ps in own.values() for p in ps]
    assert len(listed) == len(set(listed)), "a parameter is listed twice"
    assert set(listed) == {id(p) for p in params}, "a parameter is missing from the partition"
    if every_task_owns:
        assert all(own.values()), "every task owns at least its head"
    for loss in model.extra_losses().values():  # a regulariser (AITM's calibrator) may reach any parameter
        assert loss.requires_grad
    touched: dict[int, set[str]] = {id(p): set() for p in params}
    for task, loss in task_losses.items():
        grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
        for p, g in zip(params, grads):
            if g is not None and g.abs().sum() > 0:
                touched[id(p)].add(task)
    for task, ps in own.items():
        for p in ps:
            assert touched[id(p)] <= {task}, f"{task}'s parameter gets gradient from {touched[id(p)] - {task}}"
    # tight: a parameter listed as shared really serves several tasks
    for p in shared:
        assert len(touched[id(p)]) >= 2, f"shared parameter {tuple(p.shape)} serves only {touched[id(p)]}"


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
@pytest.mark.parametrize(("arch", "options"), CASES, ids=IDS)
def test_representation_split_is_exact(arch, options, encoder):
    """Where encode/decode exist they reproduce forward, and decode only uses task-specific parameters."""
    model = build(arch, encoder, **options).eval()
    x, _ = batch()
    if not model.has_representation:
        from mtlrun.errors import ConfigError

        with pytest.raises(ConfigError):
            model.encode(x)
        return
    rep = model.encode(x)
    direct = model(x)
    decoded = model.decode(rep.detach())
    for t in model.task_names:
        torch.testing.assert_close(decoded[t], direct[t])
    own = {id(p) for t in model.task_names for p in model.task_parameters(t)}
    total = sum(out.sum() for out in decoded.values())
    params = list(model.parameters())
    for p, g in zip(params, torch.autograd.grad(total, params, allow_unused=True)):
        if g is not None and g.abs().sum() > 0:
            assert id(p) in own, "decode reads a shared parameter, which rep_grad balancers would never update"

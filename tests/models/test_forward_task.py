"""The multi-input contract: ``forward_task(x, t) == forward(x)[t]`` using only shared and t's own modules."""

from __future__ import annotations

import pytest
import torch

from mtlrun.data.tasks import classification_task, regression_task
from mtlrun.models import ARCHS, EncoderSpec
from mtlrun.models.multi_input import multi_input_archs

TASKS = [classification_task("a", 3), regression_task("b"), regression_task("c")]
OPTIONS = {"branched": {"branch_at": {"a": 1, "b+c": -1}}}


def test_the_architectures_that_mix_tasks_per_sample_are_not_listed():
    names = multi_input_archs()
    assert {"hps", "single_task", "soft_sharing", "branched", "mmoe", "cgc", "mtan"} <= set(names)
    assert not {"cross_stitch", "ple", "dselect_k"} & set(names)


@pytest.mark.parametrize("arch", ["hps", "single_task", "soft_sharing", "branched", "mmoe", "cgc", "mtan"])
def test_forward_task_equals_forward_and_leaves_other_tasks_alone(arch):
    torch.manual_seed(0)
    spec = EncoderSpec("cnn", (1, 4, 4), {"channels": [2, 2], "hidden": 4})
    model = ARCHS.build(arch, OPTIONS.get(arch, {}), encoder=spec, tasks=TASKS)
    x = torch.randn(5, 1, 4, 4)
    model.eval()
    full = model(x)
    for task in ("a", "b", "c"):
        assert torch.allclose(model.forward_task(x, task), full[task], atol=1e-6)
    # in training mode task a's forward updates no batch-norm statistics of modules b or c own
    model.train()
    others = {id(m) for t in ("b", "c") for mod in model.task_modules(t) for m in mod.modules()}
    if model.input_adapters is not None:
        others |= {id(m) for t in ("b", "c") for m in model.input_adapters[t].modules()}
    before = {n: b.clone() for n, b in model.named_buffers()}
    owned = {n for name, mod in model.named_modules() if id(mod) in others for n, _ in mod.named_buffers(prefix=name)}
    model.zero_grad()
    model.forward_task(x, "a").sum().backward()
    for name, buffer in model.named_buffers():
        if name in owned:
            assert torch.equal(buffer, before[name]), name
    other_params = {id(p) for t in ("b", "c") for p in model.task_parameters(t)}
    assert all(p.grad is None for p in model.parameters() if id(p) in other_params)

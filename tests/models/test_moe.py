"""Mixture-of-experts architectures: gates are distributions, known reductions hold."""

from __future__ import annotations

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.models.helpers import batch, build


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
@pytest.mark.parametrize(
    ("arch", "options"),
    [
        ("mmoe", {"num_experts": 3}),
        ("cgc", {"num_shared_experts": 2, "num_task_experts": 1}),
        ("ple", {"num_shared_experts": 1, "num_task_experts": 2}),
        ("dselect_k", {"num_experts": 4, "k": 2}),
    ],
)
def test_gates_are_distributions(arch, options, encoder):
    model = build(arch, encoder, **options)
    x, _ = batch()
    gates = model.gates(x)
    assert gates
    for name, weights in gates.items():
        assert weights.shape[0] == x.shape[0], name
        assert (weights >= 0).all(), name
        torch.testing.assert_close(weights.sum(-1), torch.ones(x.shape[0]), msg=name)


def test_gate_sizes_follow_the_expert_pools():
    x, _ = batch()
    assert {w.shape[1] for w in build("cgc", num_shared_experts=2, num_task_experts=3).gates(x).values()} == {5}
    ple = build("ple", num_shared_experts=2, num_task_experts=3).gates(x)
    # three levels (the encoder's stages); shared gates at the two intermediate levels mix all experts
    assert set(ple) == {f"level{i}/{t}" for i in range(3) for t in "abc"} | {"level0/shared", "level1/shared"}
    assert ple["level0/shared"].shape[1] == 3 * 3 + 2 and ple["level2/a"].shape[1] == 3 + 2


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_mmoe_with_one_expert_is_hard_parameter_sharing(encoder):
    mmoe = build("mmoe", encoder, num_experts=1).eval()
    hps = build("hps", encoder, seed=7).eval()
    hps.encoder.load_state_dict(mmoe.level.shared_experts[0].state_dict())
    hps.heads.load_state_dict(mmoe.heads.state_dict())
    x, _ = batch()
    expected, got = hps(x), mmoe(x)
    for t in expected:
        torch.testing.assert_close(got[t], expected[t])


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_cgc_without_shared_experts_is_single_task(encoder):
    cgc = build("cgc", encoder, num_shared_experts=0, num_task_experts=1).eval()
    stl = build("single_task", encoder, seed=7).eval()
    for t in stl.task_names:
        stl.encoders[t].load_state_dict(cgc.level.task_experts[t][0].state_dict())
    stl.heads.load_state_dict(cgc.heads.state_dict())
    x, _ = batch()
    expected, got = stl(x), cgc(x)
    for t in expected:
        torch.testing.assert_close(got[t], expected[t])


@pytest.mark.parametrize(
    ("arch", "options", "message"),
    [
        ("mmoe", {"num_experts": 0}, "arch.num_experts=0 must be >= 1"),
        ("cgc", {"num_task_experts": 0}, "arch.num_task_experts=0 must be >= 1"),
        ("ple", {"num_shared_experts": 0}, "arch.num_shared_experts=0 must be >= 1"),
        ("dselect_k", {"num_experts": 4, "k": 5}, "arch.k=5 must be <= arch.num_experts=4"),
        ("dselect_k", {"gamma": 0.0}, "arch.gamma=0.0 must be > 0"),
        ("dselect_k", {"entropy_reg": -1.0}, "arch.entropy_reg=-1.0 must be >= 0"),
        ("mmoe", {"num_experts": 2.5}, "arch.num_experts=2.5 has the wrong type"),
    ],
)
def test_bad_options_are_one_line_errors(arch, options, message):
    with pytest.raises(ConfigError) as info:
        build(arch, **options)
    assert message in str(info.value) and "\n" not in str(info.value)

"""Branched networks: the tree from ``branch_at``, its errors, and its representation."""

from __future__ import annotations

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.conftest import TINY
from tests.models.helpers import batch, build


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_splits_every_task_at_the_last_stage():
    model = build("branched")
    assert model.partitions == [[("a", "b", "c")], [("a", "b", "c")], [("a",), ("b",), ("c",)]]
    assert model.has_representation and model.trunk_length == 2


def test_groups_form_a_tree():
    model = build("branched", branch_at={"a+b": 1, "a": -1})
    assert model.partitions == [[("a", "b", "c")], [("a", "b"), ("c",)], [("a",), ("b",), ("c",)]]
    assert not model.has_representation  # the a+b branch is shared by two tasks, after the trunk
    names = {".".join(n.split(".")[:3]) for n, _ in model.named_parameters()}
    assert {"branches.1.a+b", "branches.1.c", "branches.2.a", "branches.2.b", "branches.2.c"} <= names


def test_extreme_trees_are_hard_sharing_and_single_task():
    shared_all = build("branched", branch_at={"a+b+c": 0})
    assert shared_all.partitions == [[("a", "b", "c")]] * 3 and shared_all.has_representation
    assert count(shared_all) == count(build("hps"))
    separate = build("branched", branch_at={"a": 0, "b": 0})
    assert separate.partitions[0] == [("a",), ("b",), ("c",)] and not separate.has_representation
    assert count(separate) == count(build("single_task"))
    assert separate.shared_parameters() == []


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_hard_sharing_tree_computes_hard_sharing(encoder):
    tree = build("branched", encoder, branch_at={"a+b+c": 0}).eval()
    hps = build("hps", encoder, seed=5).eval()
    for s, stage in enumerate(hps.encoder.stages):
        stage.load_state_dict(tree.branches[s]["a+b+c"].state_dict())
    hps.heads.load_state_dict(tree.heads.state_dict())
    x, _ = batch()
    expected, got = hps(x), tree(x)
    for t in expected:
        torch.testing.assert_close(got[t], expected[t])


@pytest.mark.parametrize(
    ("branch_at", "message"),
    [
        ({"a+z": 1}, "arch.branch_at: 'z' in group 'a+z' is not a task of this run; choose from: a, b, c"),
        ({"a": 3}, "arch.branch_at.a=3 must be a stage index in [-3, 2]"),
        ({"a": -4}, "arch.branch_at.a=-4 must be a stage index in [-3, 2]"),
        ({"a": "1"}, "arch.branch_at.a='1' must be a stage index"),
        ({"a+a": 1}, "arch.branch_at: group 'a+a' names a task twice"),
    ],
)
def test_bad_branch_points_are_one_line_errors(branch_at, message):
    with pytest.raises(ConfigError) as info:
        build("branched", branch_at=branch_at)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_branch_at_must_be_a_mapping():
    with pytest.raises(ConfigError, match="arch.branch_at=.*wrong type"):
        build("branched", branch_at=[1, 2])


def test_tree_from_the_command_line(cli):
    common = ["arch=branched", "encoder=mlp", "encoder.hidden=[16,8]", "report.baselines=false", "diagnostics.every=0"]
    result = cli(*common, "arch.branch_at={left+right:1,sum:0}", *TINY)
    assert result.code == 0, result.err
    counts = result.summary()["parameters"]
    assert counts["per_task"]["sum"] > counts["per_task"]["parity"]  # sum has its own encoder
    bad = cli(*common, "arch.branch_at={left+middle:1}", *TINY)
    assert bad.code == 2 and "arch.branch_at: 'middle' in group 'left+middle'" in bad.err

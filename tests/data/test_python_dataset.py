"""Python datasets: both return forms, argument passing and the one-line errors."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from mtlrun.data import build_dataset
from mtlrun.errors import ConfigError

MODULE = """
import math
import torch
from mtlrun.data import MultiTaskDataset, TensorSplit
from mtlrun.data.tasks import declared_task, regression_task

def full(n=12, masked=True):
    x = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2)
    y = torch.arange(n, dtype=torch.float32)
    y[0] = math.nan
    split = TensorSplit(x, {"y": y})
    task = declared_task("y", "regression", masked=True) if masked else regression_task("y")
    return MultiTaskDataset({"y": task}, split, split, split, (2,), "mlp")

def simple(n=10):
    x = torch.randn(n, 1, 4, 4)
    tags = [[1, 0], [0, 1]] * (n // 2)
    kind = ["a", "b", None, "c", "a"] * (n // 5)
    return {"tasks": {"kind": "classification", "tags": "multilabel"},
            "train": (x, {"kind": kind, "tags": tags}), "val": (x, {"kind": kind, "tags": tags}),
            "test": (x, {"kind": kind, "tags": tags})}

def wrong():
    return [1, 2, 3]
"""


@pytest.fixture
def module(tmp_path, monkeypatch):
    (tmp_path / "user_data_mod.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_data_mod"
    sys.modules.pop("user_data_mod", None)


def test_a_returned_multitask_dataset_is_checked_and_flags_missing_labels(module):
    data = build_dataset({"name": "python", "_target_": f"{module}.full", "n": 8})
    assert len(data.train) == 8 and data.has_missing_labels
    with pytest.raises(ConfigError, match="task y has missing labels .* not masked; build it with masked=True"):
        build_dataset({"name": "python", "_target_": f"{module}.full", "masked": False})


def test_the_simple_form_is_encoded_like_table_columns(module):
    data = build_dataset({"name": "python", "_target_": f"{module}.simple"})
    assert data.input_shape == (1, 4, 4) and data.default_encoder == "cnn"
    assert data.info["tasks"]["kind"]["classes"] == ["a", "b", "c"]
    assert data.train.targets["kind"].tolist() == [0, 1, -1, 2, 0] * 2
    assert data.tasks["tags"].out_dim == 2 and data.train.targets["tags"].shape == (10, 2)
    assert data.has_missing_labels and data.tasks["kind"].masked and not data.tasks["tags"].masked
    assert torch.equal(data.train.x, data.test.x)


def test_arguments_from_the_config_and_keys_of_the_default_dataset(module):
    # keys inherited from the built-in dataset's YAML that the function does not take are dropped
    data = build_dataset({"name": "multi_digits", "_target_": f"{module}.full", "pairs_per_image": 2, "n": 6})
    assert len(data.train) == 6
    with pytest.raises(ConfigError, match=r"unknown key 'dataset.size'; valid keys: masked, n"):
        build_dataset({"name": "python", "_target_": f"{module}.full", "size": 3})


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("nowhere_pkg.build", "dataset._target_=nowhere_pkg.build does not import"),
        ("{m}.missing_function", "does not import"),
        ("{m}.wrong", "returned list; return a MultiTaskDataset or a mapping"),
    ],
)
def test_bad_targets_are_one_line_errors(module, target, needle):
    with pytest.raises(ConfigError) as ex:
        build_dataset({"name": "python", "_target_": target.format(m=module)})
    assert needle in str(ex.value) and "\n" not in str(ex.value)


def test_python_choice_without_target():
    with pytest.raises(ConfigError, match="dataset=python needs dataset._target_"):
        build_dataset({"name": "python", "_target_": None})

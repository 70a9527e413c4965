"""A metric undefined on the validation or test split is refused before training, in one line naming
the split, the task and the metric; each metric's declared need is what torchmetrics needs."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from mtlrun.data.base import MultiTaskDataset, TensorSplit
from mtlrun.data.evaluable import check_evaluable, unmet
from mtlrun.data.tasks import METRIC_CATALOG, declared_task
from mtlrun.errors import ConfigError

NAN = float("nan")
CLASSES = 3


def labels_for(kind: str, degenerate: bool) -> torch.Tensor:
    """The fewest labels that meet every declared need of ``kind``, or a degenerate set that meets
    only the first rule (at least one label)."""
    if kind == "classification":
        return torch.tensor([0, 0, 0, -1]) if degenerate else torch.tensor([0, 1, 2, -1])
    if kind == "binary":
        return torch.tensor([1.0, 1.0, NAN]) if degenerate else torch.tensor([0.0, 1.0, NAN])
    if kind == "regression":
        return torch.tensor([2.5, NAN]) if degenerate else torch.tensor([2.5, 4.0, NAN])
    return torch.tensor([[0.0, 1.0], [0.0, 1.0]]) if degenerate else torch.tensor([[0.0, 1.0], [1.0, 0.0]])


def predictions(kind: str, n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if kind == "classification":
        return torch.rand(n, CLASSES, generator=generator).softmax(1)
    if kind == "multilabel":
        return torch.rand(n, 2, generator=generator)
    return torch.rand(n, generator=generator)


def score(kind: str, metric: str, y: torch.Tensor, seed: int = 0) -> tuple[float | None, list[str]]:
    """The metric's value on the present labels of ``y`` and torchmetrics' warnings (None if it raises)."""
    size = CLASSES if kind == "classification" else 2
    spec = declared_task("t", kind, size, metrics=[metric], masked=True)
    keep = spec.present(y) if y.ndim == 1 else torch.ones(len(y), dtype=torch.bool)
    target = y[keep]
    target = target.long() if kind in ("classification", "multilabel", "binary") else target
    value: float | None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = float(spec.metrics[metric]()(predictions(kind, len(target), seed), target))
        except (ValueError, RuntimeError, IndexError):
            value = None
    return value, [str(w.message) for w in caught]


@pytest.mark.parametrize("kind, metric", [(k, m) for k, metrics in METRIC_CATALOG.items() for m in metrics])
def test_each_declared_need_is_enough_and_what_it_refuses_is_undefined(kind: str, metric: str):
    spec = declared_task("t", kind, CLASSES if kind == "classification" else 2, metrics=[metric], masked=True)
    need = spec.metrics[metric].needs
    good = labels_for(kind, degenerate=False)
    assert unmet(need, spec, good) is None
    value, caught = score(kind, metric, good)
    assert value is not None and math.isfinite(value) and not caught, (need, value, caught)
    bad = labels_for(kind, degenerate=True)
    if unmet(need, spec, bad) is not None:  # refused: undefined (raises, warns, NaN) or blind to the model
        value, caught = score(kind, metric, bad)
        blind = value == score(kind, metric, bad, seed=1)[0] == score(kind, metric, bad, seed=2)[0]
        assert value is None or not math.isfinite(value) or caught or blind, (need, value)
    else:  # accepted: defined, without a warning
        value, caught = score(kind, metric, bad)
        assert value is not None and math.isfinite(value) and not caught, (need, value, caught)


def dataset(kind: str, val: torch.Tensor, metrics: list[str] | None = None) -> MultiTaskDataset:
    size = CLASSES if kind == "classification" else 2
    spec = declared_task("t", kind, size, metrics=metrics, masked=True)
    train = labels_for(kind, degenerate=False)

    def split(y: torch.Tensor) -> TensorSplit:
        return TensorSplit(torch.zeros(len(y), 2), {"t": y})

    return MultiTaskDataset({"t": spec}, split(train), split(val), split(train), (2,), "mlp")


@pytest.mark.parametrize(
    "kind, val, metrics, says",
    [
        ("binary", torch.tensor([1.0, 1.0, 1.0]), None, "metric auroc: its 3 label(s) are all class 1"),
        ("binary", torch.tensor([0.0, NAN]), ["average_precision"], "all class 0; the metric needs both classes"),
        ("regression", torch.tensor([3.0]), None, "metric r2: its 1 label(s) are all 3"),
        ("regression", torch.tensor([3.0, 3.0, NAN]), ["mae", "r2"], "metric r2: its 2 label(s) are all 3"),
        (
            "classification",
            torch.tensor([0, 1, 1]),
            ["accuracy", "auroc"],
            "metric auroc: it has no label of class(es) 2",
        ),
        ("multilabel", torch.tensor([[0.0, 1.0], [1.0, 1.0]]), ["auroc"], "label column 2 holds only 1"),
        ("binary", torch.tensor([NAN, NAN]), ["accuracy"], "metric accuracy: it has no label"),
    ],
)
def test_an_undefined_metric_is_refused_naming_split_task_and_metric(kind, val, metrics, says):
    with pytest.raises(ConfigError) as err:
        check_evaluable(dataset(kind, val, metrics))
    message = str(err.value)
    assert message.startswith("the val split cannot score task t with ") and says in message and "\n" not in message


def test_metrics_that_are_defined_pass():
    check_evaluable(dataset("binary", torch.tensor([1.0, 1.0]), ["accuracy", "f1"]))  # defined on one class
    check_evaluable(dataset("regression", torch.tensor([3.0]), ["mae", "rmse"]))
    check_evaluable(dataset("classification", torch.tensor([0, 0]), ["accuracy", "f1_macro", "balanced_accuracy"]))


def test_an_empty_held_out_split_is_refused():
    data = dataset("binary", torch.tensor([0.0, 1.0]))
    data.test = TensorSplit(torch.zeros(0, 2), {"t": torch.zeros(0)})
    with pytest.raises(ConfigError, match="^the test split is empty"):
        check_evaluable(data)

"""Whether the validation and test splits can score every metric of every task, checked before training.

A metric that is undefined on a split used to surface late and quietly: R² of one label raises
inside torchmetrics at the first evaluation, R² of a constant target and the AUROC of a split
holding one class come out as 0 with a warning, the average precision of a split without
negatives is 1 whatever the model predicts, a split without labels gives NaN. Each metric
declares what it needs from a split's labels (``MetricFactory.needs``, see
:data:`mtlrun.data.base.METRIC_NEEDS`), and :func:`check_evaluable` refuses a split that lacks it
in one line naming the split, the task and the metric. The rules:

- every metric needs at least one label in the split;
- ``distinct`` (R²): at least two different values (R² divides by their variance);
- ``both_classes`` (binary AUROC, average precision): at least one positive and one negative;
- ``every_class`` (one-vs-rest AUROC over every class): each class of the task in the split;
- ``both_values_per_label`` (multilabel AUROC): a 0 and a 1 in every label column;
- ``both_classes_in_a_group`` (GAUC): some group (``dataset.group_by``) holds a positive and a negative.

A metric scored on the positive rows of another task (``<metric>_given_<task>``) is held to its
rule on those rows.

Missing labels (NaN, or -1 for class targets) do not count. Metrics of the user's own factories
(plain callables, which declare nothing) and per-pixel tasks (their splits are read a batch at a
time; an example always holds pixels) are held to the first rule only where labels are in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlrun.data.base import GROUP_KEY, MetricFactory, MultiTaskDataset, TaskSpec, given_key
from mtlrun.data.multi_input import is_multi_input
from mtlrun.errors import ConfigError

#: the splits the run evaluates (validation every epoch, test at the end)
EVALUATED = ("val", "test")


def _labels(split: Any, task: str) -> Tensor | None:
    """Task ``task``'s labels in ``split`` when they can be read whole (in memory, or a 1-D file);
    also a side entry such as ``@group`` (see :data:`mtlrun.data.base.SIDE_PREFIX`)."""
    if is_multi_input(split):
        split = split.splits.get(task)
    targets = getattr(split, "targets", None)
    if not isinstance(targets, dict) or task not in targets:
        return None
    y = targets[task]
    return y if isinstance(y, Tensor) else torch.from_numpy(np.array(y))


def _present(spec: TaskSpec, y: Tensor) -> Tensor:
    return y[spec.present(y)] if y.ndim == 1 else y


def unmet(need: str, spec: TaskSpec, y: Tensor, groups: Tensor | None = None) -> str | None:
    """Why the labels ``y`` of one split fall short of ``need``, or None when they meet it.

    ``groups`` (the rows' groups) matter to ``both_classes_in_a_group`` only; without them the
    whole split is one group."""
    y = y.detach().cpu()
    if spec.kind == "multilabel" and y.ndim == 2:
        present = spec.present(y)
        if not bool(present.any()):
            return "it has no label"
        if need == "both_values_per_label":
            for j in range(y.shape[1]):
                values = set(y[:, j][present[:, j]].tolist())
                if not {0, 1} <= {int(v) for v in values}:
                    held = ", ".join(str(int(v)) for v in sorted(values)) or "no label"
                    return (
                        f"label column {j + 1} holds only {held}; the metric needs both 0 and 1 in every label column"
                    )
        return None
    labels = _present(spec, y)
    count = int(labels.numel())
    if count == 0:
        return "it has no label"
    if need == "both_classes_in_a_group":
        if groups is None:
            need = "both_classes"
        else:
            present = spec.present(y)
            g, v = groups.detach().cpu()[present].long(), labels.long()
            positives = torch.zeros(int(g.max()) + 1, dtype=torch.long).index_add_(0, g, v)
            sizes = torch.bincount(g, minlength=positives.numel())
            if not bool(((positives > 0) & (positives < sizes)).any()):
                return (
                    f"none of its {int((sizes > 0).sum())} groups holds both classes; the metric scores each "
                    "group (user) that has positives and negatives"
                )
            return None
    if need == "distinct":
        distinct = torch.unique(labels)
        if distinct.numel() < 2:
            value = distinct[0].item()
            return f"its {count} label(s) are all {value:g}; the metric needs at least two different values"
    elif need == "both_classes":
        classes = {int(v) for v in torch.unique(labels).tolist()}
        if len(classes) < 2:
            only = f"class {next(iter(classes))}" if classes else "no class"
            return f"its {count} label(s) are all {only}; the metric needs both classes (positives and negatives)"
    elif need == "every_class":
        found = {int(v) for v in torch.unique(labels).tolist()}
        lacking = [c for c in range(spec.out_dim) if c not in found]
        if lacking:
            shown = ", ".join(map(str, lacking[:5])) + (", ..." if len(lacking) > 5 else "")
            return (
                f"it has no label of class(es) {shown} (of 0..{spec.out_dim - 1}); the metric scores every class "
                "against the rest, so it needs each class"
            )
    return None


def _need(factory: Any) -> str:
    return factory.needs if isinstance(factory, MetricFactory) else "labels"


def check_evaluable(data: MultiTaskDataset, splits: Sequence[str] = EVALUATED) -> None:
    """Refuse, with one :class:`ConfigError` line, a split on which a task's metric is undefined."""
    for name in splits:
        split = data.split(name)
        if len(split) == 0:
            raise ConfigError(
                f"the {name} split is empty; every task's metrics are computed on it (use a larger dataset "
                "or larger held-out fractions)"
            )
        for task, spec in data.tasks.items():
            if spec.dense:
                continue
            y = _labels(split, task)
            if y is None:
                continue
            groups = _labels(split, GROUP_KEY)
            given = spec.given_metrics()
            given_labels = _labels(split, given_key(spec.given)) if spec.given is not None else None
            rows = given_labels == 1 if given_labels is not None else None
            for metric, factory in spec.metrics.items():
                if metric in given and rows is not None and y.ndim == 1:
                    kept = None if groups is None else groups[rows]
                    problem = unmet(_need(factory), spec, y[rows], kept)
                    if problem is not None:
                        problem = f"on the rows where {spec.given} is positive, {problem}"
                else:
                    problem = unmet(_need(factory), spec, y, groups if y.ndim == 1 else None)
                if problem is not None:
                    raise ConfigError(
                        f"the {name} split cannot score task {task} with metric {metric}: {problem}; "
                        "hold out more rows for this split or choose other metrics"
                    )

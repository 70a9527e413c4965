"""Datasets and task specifications.

A dataset declares its tasks as :class:`TaskSpec` objects and yields ``(x, {task: target})``.
In-memory datasets (every built-in one) batch by slicing tensors with a seeded permutation,
which is several times faster than a ``DataLoader`` over single items and fully reproducible.

Missing labels: any task's label may be absent for a sample. Float targets (binary, regression,
multilabel) mark a missing label with NaN; integer class targets with -1 (any negative value).
A dataset with such labels sets ``has_missing_labels`` and builds its tasks with ``masked=True``:
their losses average over the present labels only (a batch without any label gives an exact zero
that keeps its graph) and their metrics skip the absent ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.errors import ConfigError
from mtlrun.registry import Registry

DATASETS: Registry[MultiTaskDataset] = Registry("dataset")

#: Task kinds understood by heads, losses and metrics. Dense kinds take feature maps.
TASK_KINDS = ("classification", "binary", "regression", "segmentation", "depth", "normal", "multilabel")
#: kinds that are always per-pixel; a ``regression`` task is per-pixel when its spec says ``dense=True``
DENSE_KINDS = ("segmentation", "depth", "normal")


#: what a metric needs from a split's labels: ``labels`` at least one (every metric); ``distinct``
#: two different values (R² divides by their variance); ``both_classes`` positives and negatives
#: (binary AUROC, average precision); ``every_class`` each class present (one-vs-rest AUROC over
#: every class); ``both_values_per_label`` a 0 and a 1 in every label column (multilabel AUROC);
#: ``both_classes_in_a_group`` some group (user) holding positives and negatives (GAUC)
METRIC_NEEDS = ("labels", "distinct", "both_classes", "every_class", "both_values_per_label", "both_classes_in_a_group")

#: keys of a split's ``targets`` that hold no task but what some metrics read beside the labels:
#: ``@group`` the group (user) index of each row (GAUC), ``@<task>`` the labels of a task whose
#: positive rows a conditional metric is restricted to (a conversion rate scored on clicked rows).
#: They travel through :meth:`TensorSplit.select`, so single-task baselines keep them.
SIDE_PREFIX = "@"
GROUP_KEY = "@group"


def given_key(task: str) -> str:
    """The side key holding task ``task``'s labels for the metrics scored on its positive rows."""
    return SIDE_PREFIX + task


def side_targets(targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """The side entries of a split's or batch's ``targets`` (see :data:`SIDE_PREFIX`)."""
    return {k: v for k, v in targets.items() if k.startswith(SIDE_PREFIX)}


def given_suffix(task: str) -> str:
    """The suffix of a metric scored only on the rows where task ``task``'s label is positive."""
    return f"_given_{task}"


@dataclass(frozen=True)
class MetricFactory:
    """Builds a fresh metric and declares its direction up front. Building a torchmetrics metric
    imports torchmetrics (and with it scipy.signal and matplotlib, seconds on a small machine), so
    the run reads directions from here and builds metrics only at its first evaluation. Any
    zero-argument callable returning a metric with ``higher_is_better`` works as a factory too.

    ``needs`` says what a split's labels must hold for the metric to be defined (one of
    :data:`METRIC_NEEDS`); the run checks it for the validation and test splits before training
    (:mod:`mtlrun.data.evaluable`), instead of meeting a NaN or a crash at the first evaluation.
    """

    build: Callable[..., Any]
    higher_is_better: bool
    needs: str = "labels"

    def __post_init__(self) -> None:
        if self.needs not in METRIC_NEEDS:
            raise ValueError(f"MetricFactory.needs={self.needs!r} not in {METRIC_NEEDS}")

    def __call__(self, *args: Any) -> Any:
        return self.build(*args)


@dataclass
class TaskSpec:
    """What a task is: its kind, output size, loss and metrics.

    ``metrics`` maps a metric name to a factory of a fresh torchmetrics ``Metric``; each metric's
    ``higher_is_better`` attribute says its direction. ``primary`` names the metric used to pick
    the best epoch and to rank runs.
    """

    name: str
    kind: str
    out_dim: int
    loss: Callable[[Tensor, Tensor], Tensor]
    metrics: dict[str, Callable[[], Any]]
    primary: str
    head_hidden: int = 0
    #: regression heads predict (y - target_shift) / target_scale; metrics see the original units
    target_shift: float = 0.0
    target_scale: float = 1.0
    #: targets may hold missing labels (NaN, or -1 for class targets): see the module docstring
    masked: bool = False
    #: per-pixel task: its head reads a feature map and outputs (N, out_dim, H, W) at the input size
    dense: bool = False
    #: a binary task whose positive rows the metrics named ``<metric>_given_<given>`` are scored on
    #: (a conversion rate on clicked rows, Ma et al. SIGIR 2018); its labels ride in the split's
    #: targets under :func:`given_key`, and the model may score them with its own conditional
    #: output (``MultiTaskModel.given_output``: ESMM's pCVR)
    given: str | None = None

    def __post_init__(self) -> None:
        if self.kind in DENSE_KINDS:
            self.dense = True
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind {self.kind!r} not in {TASK_KINDS}")
        if self.primary not in self.metrics:
            raise ValueError(f"primary metric {self.primary!r} of task {self.name!r} not in {list(self.metrics)}")

    def build_head(self, in_dim: int) -> nn.Module:
        """A small head mapping the shared feature vector to this task's output."""
        if self.head_hidden:
            return nn.Sequential(
                nn.Linear(in_dim, self.head_hidden), nn.ReLU(), nn.Linear(self.head_hidden, self.out_dim)
            )
        return nn.Linear(in_dim, self.out_dim)

    def predictions(self, output: Tensor) -> Tensor:
        """Turn a head's raw output into what the metrics take."""
        if self.dense:
            if self.kind == "normal":
                return torch.nn.functional.normalize(output, dim=1)
            return output if self.kind == "segmentation" else output * self.target_scale + self.target_shift
        if self.kind == "binary":
            return torch.sigmoid(output.squeeze(-1))
        if self.kind == "multilabel":
            return torch.sigmoid(output)
        if self.kind in ("regression", "depth"):
            output = output * self.target_scale + self.target_shift
            return output.squeeze(-1) if output.shape[-1] == 1 else output
        return output

    def present(self, target: Tensor) -> Tensor:
        """Which labels of ``target`` are present (bool, same shape as ``target``)."""
        if target.is_floating_point():
            return ~torch.isnan(target)
        return target >= 0

    def label_count(self, target: Tensor) -> Tensor:
        """Number of present labels in ``target`` (a 0-d tensor on its device, no host sync)."""
        if not self.masked:
            return torch.tensor(target.numel(), device=target.device)
        return self.present(target).sum()

    def metric_inputs(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor] | None:
        """``(predictions, target)`` for the metrics, restricted to the present labels; ``None``
        when the batch has none. Multilabel targets keep their shape with -1 where missing (the
        metrics are built with ``ignore_index=-1``)."""
        preds = self.predictions(output)
        if self.kind == "multilabel":
            present = self.present(target)
            if self.masked and not bool(present.any()):
                return None
            return preds, torch.where(present, target, -1.0).long() if target.is_floating_point() else target
        if not self.masked:
            return preds, target
        keep = self.present(target)  # one label per sample (N,)
        if not bool(keep.any()):
            return None
        return preds[keep], target[keep]

    def given_metrics(self) -> list[str]:
        """The metrics scored on the positive rows of task :attr:`given` only (none without it)."""
        if self.given is None:
            return []
        return [m for m in self.metrics if m.endswith(given_suffix(self.given))]

    def metric_rows(
        self, output: Tensor, target: Tensor, rows: Tensor | None = None, groups: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """:meth:`metric_inputs` of one label per row, restricted to ``rows`` (bool (N,)) when given,
        with each kept row's group index (``groups``, (N,)) beside it; ``None`` when no row is left."""
        if rows is None and groups is None:
            pair = self.metric_inputs(output, target)
            return None if pair is None else (pair[0], pair[1], None)
        preds = self.predictions(output)
        keep = self.present(target) if self.masked else torch.ones_like(target, dtype=torch.bool)
        if rows is not None:
            keep = keep & rows
        if not bool(keep.any()):
            return None
        return preds[keep], target[keep], None if groups is None else groups[keep]

    def metric_directions(self) -> dict[str, bool]:
        """``{metric: higher_is_better}``, without building a metric whose factory declares it."""
        return {
            name: factory.higher_is_better if isinstance(factory, MetricFactory) else bool(factory().higher_is_better)
            for name, factory in self.metrics.items()
        }


@dataclass
class TensorSplit:
    """One split held in memory: inputs ``x`` (N, ...) and one target tensor per task."""

    x: Tensor
    targets: dict[str, Tensor]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.x[index], {t: y[index] for t, y in self.targets.items()}

    def select(self, tasks: list[str]) -> TensorSplit:
        """The split with the targets of ``tasks`` only (and the side entries, see :data:`SIDE_PREFIX`)."""
        return TensorSplit(self.x, {**{t: self.targets[t] for t in tasks}, **side_targets(self.targets)})

    def to(self, device: torch.device) -> TensorSplit:
        return TensorSplit(self.x.to(device), {t: y.to(device) for t, y in self.targets.items()})

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """Yield ``(x, {task: y})`` mini-batches; the permutation comes from ``generator``."""
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator).to(self.x.device)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                yield self.x[idx], {t: y[idx] for t, y in self.targets.items()}
        else:
            for start in range(0, n, batch_size):
                sl = slice(start, start + batch_size)
                yield self.x[sl], {t: y[sl] for t, y in self.targets.items()}

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    @property
    def device(self) -> torch.device:
        """Where the batches live."""
        return self.x.device


@dataclass
class MultiTaskDataset:
    """A dataset with train/val/test splits and the tasks it declares.

    ``default_encoder`` is the encoder ``encoder=auto`` resolves to; ``input_shape`` is one
    example's shape, from which encoders size themselves.
    """

    tasks: dict[str, TaskSpec]
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    input_shape: tuple[int, ...]
    default_encoder: str
    info: dict[str, Any] = field(default_factory=dict)
    #: some task labels are missing (see the module docstring); the trainer then tells balancers
    #: which tasks have a label in each batch (``StepContext.present``)
    has_missing_labels: bool = False
    #: per encoder name, arguments the data fixes (e.g. ``{"tabular": {"cardinalities": [...]}}``)
    encoder_context: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: files the run folder keeps beside the results, ``{name: text}`` (a text dataset's
    #: ``tokenizer.json``, so the run can be re-tokenized or reused with ``dataset.tokenizer=FOLDER``)
    files: dict[str, str] = field(default_factory=dict)

    def split(self, name: str) -> TensorSplit:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def select(self, names: list[str]) -> MultiTaskDataset:
        """The same data restricted to a task set (``names`` are already validated)."""
        return MultiTaskDataset(
            tasks={n: self.tasks[n] for n in names},
            train=self.train.select(names),
            val=self.val.select(names),
            test=self.test.select(names),
            input_shape=self.input_shape,
            default_encoder=self.default_encoder,
            info=self.info,
            has_missing_labels=self.has_missing_labels,
            encoder_context=self.encoder_context,
            files=self.files,
        )


#: the options that hold the (val, test) fractions of a dataset split by fractions
FRACTION_KEYS = ("dataset.val_fraction", "dataset.test_fraction")


def check_split_fractions(fractions: tuple[float, float], keys: tuple[str, str] = FRACTION_KEYS) -> None:
    """The held-out fractions leave rows to train on: each in [0, 1) and their sum below 1.

    Above that, the rounded split sizes overlap: the train split would be empty and the test split
    smaller than asked, without a word.
    """
    for key, value in zip(keys, fractions):
        if not 0 <= value < 1:
            raise ConfigError(f"{key}={value} must lie in [0, 1)")
    total = fractions[0] + fractions[1]
    if total >= 1:
        raise ConfigError(f"{keys[0]} + {keys[1]} = {total:g} must be < 1 (the rest is the train split)")


def split_indices(n: int, fractions: tuple[float, float], generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """A seeded train/val/test partition of ``range(n)``; ``fractions`` are (val, test)."""
    check_split_fractions(fractions)
    order = torch.randperm(n, generator=generator)
    n_val, n_test = int(round(n * fractions[0])), int(round(n * fractions[1]))
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def present_tasks(tasks: dict[str, TaskSpec], targets: dict[str, Tensor], names: list[str]) -> Tensor:
    """bool (T,): which of ``names`` have at least one label in the batch ``targets``."""
    return torch.stack([tasks[t].label_count(targets[t]) > 0 for t in names])

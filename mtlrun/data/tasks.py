"""Ready-made TaskSpecs for the common kinds, with their losses and torchmetrics metrics.

Classification reports accuracy and macro-F1, binary accuracy and AUROC, regression MAE, RMSE
and R². Each metric object carries torchmetrics' ``higher_is_better``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlrun.data.base import MetricFactory, TaskSpec, given_suffix
from mtlrun.errors import ConfigError, choices_error
from mtlrun.lazy import lazy_module
from mtlrun.plugins.metrics import is_user_metric, user_metric

# torchmetrics imports scipy.signal and matplotlib when it loads: the factories below load it when
# the first metric is built (the evaluator of a run), not when a dataset module is imported
tm = lazy_module("torchmetrics")
rec = lazy_module("mtlrun.data.rec_metrics")  # gauc, logloss (imports torchmetrics)


def classification_task(name: str, num_classes: int, primary: str = "accuracy") -> TaskSpec:
    return TaskSpec(
        name=name,
        kind="classification",
        out_dim=num_classes,
        loss=F.cross_entropy,
        metrics={
            "accuracy": MetricFactory(
                lambda: tm.classification.MulticlassAccuracy(num_classes=num_classes, average="micro"), True
            ),
            "f1_macro": MetricFactory(
                lambda: tm.classification.MulticlassF1Score(num_classes=num_classes, average="macro"), True
            ),
        },
        primary=primary,
    )


def _binary_loss(output: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(output.squeeze(-1), target.float())


def binary_task(name: str, primary: str = "accuracy") -> TaskSpec:
    return TaskSpec(
        name=name,
        kind="binary",
        out_dim=1,
        loss=_binary_loss,
        metrics={
            "accuracy": MetricFactory(lambda: tm.classification.BinaryAccuracy(), True),
            "auroc": MetricFactory(lambda: tm.classification.BinaryAUROC(), True, needs="both_classes"),
        },
        primary=primary,
    )


class StandardizedMSE:
    """Mean squared error on the standardised target ``(y - shift) / scale``, so that regression
    losses start near 1 whatever the target's units (metrics still see the original units)."""

    def __init__(self, shift: float, scale: float) -> None:
        self.shift, self.scale = shift, scale

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output.squeeze(-1), (target - self.shift) / self.scale)


def regression_task(name: str, primary: str = "mae", shift: float = 0.0, scale: float = 1.0) -> TaskSpec:
    return TaskSpec(
        name=name,
        kind="regression",
        out_dim=1,
        loss=StandardizedMSE(shift, scale),
        target_shift=shift,
        target_scale=scale,
        metrics={
            "mae": MetricFactory(lambda: tm.MeanAbsoluteError(), False),
            "rmse": MetricFactory(lambda: tm.MeanSquaredError(squared=False), False),
            "r2": MetricFactory(lambda: tm.R2Score(), True, needs="distinct"),
        },
        primary=primary,
    )


# -- missing labels and declared tasks (tables, image folders, Python datasets) ---------------


def masked_mean(per_label: Tensor, present: Tensor) -> Tensor:
    """Mean of ``per_label`` over the present labels. With none present the result is an exact
    zero that still has a graph (its gradient is zero), so balancers see a valid loss."""
    total = torch.where(present, per_label, torch.zeros_like(per_label)).sum()
    return total / present.sum().clamp(min=1)


def masked_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy averaged over the samples whose class target is >= 0 (-1 = missing)."""
    present = target >= 0
    return masked_mean(F.cross_entropy(output, target.clamp(min=0), reduction="none"), present)


def masked_binary_loss(output: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy (on logits) averaged over the non-NaN targets."""
    present = ~torch.isnan(target)
    filled = torch.where(present, target, torch.zeros_like(target))
    per = F.binary_cross_entropy_with_logits(output.reshape(target.shape), filled, reduction="none")
    return masked_mean(per, present)


def multilabel_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross-entropy over every label of every sample (no missing labels)."""
    return F.binary_cross_entropy_with_logits(output, target.float())


class MaskedStandardizedMSE(StandardizedMSE):
    """:class:`StandardizedMSE` averaged over the non-NaN targets."""

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        present = ~torch.isnan(target)
        filled = torch.where(present, target, torch.full_like(target, self.shift))
        per = (output.reshape(target.shape) - (filled - self.shift) / self.scale) ** 2
        return masked_mean(per, present)


#: the metrics each declared kind offers, as ``{name: factory(size)}``; the first ones are the
#: defaults (see DEFAULT_METRICS). Multilabel metrics skip targets equal to -1 (missing).
METRIC_CATALOG: dict[str, dict[str, MetricFactory]] = {
    "classification": {
        "accuracy": MetricFactory(lambda c: tm.classification.MulticlassAccuracy(num_classes=c, average="micro"), True),
        "f1_macro": MetricFactory(lambda c: tm.classification.MulticlassF1Score(num_classes=c, average="macro"), True),
        "balanced_accuracy": MetricFactory(
            lambda c: tm.classification.MulticlassAccuracy(num_classes=c, average="macro"), True
        ),
        "auroc": MetricFactory(lambda c: tm.classification.MulticlassAUROC(num_classes=c), True, needs="every_class"),
    },
    "binary": {
        "accuracy": MetricFactory(lambda _: tm.classification.BinaryAccuracy(), True),
        "auroc": MetricFactory(lambda _: tm.classification.BinaryAUROC(), True, needs="both_classes"),
        "f1": MetricFactory(lambda _: tm.classification.BinaryF1Score(), True),
        "average_precision": MetricFactory(
            lambda _: tm.classification.BinaryAveragePrecision(), True, needs="both_classes"
        ),
        "gauc": MetricFactory(lambda _: rec.GroupAUC(), True, needs="both_classes_in_a_group"),
        "logloss": MetricFactory(lambda _: rec.LogLoss(), False),
    },
    "regression": {
        "mae": MetricFactory(lambda _: tm.MeanAbsoluteError(), False),
        "rmse": MetricFactory(lambda _: tm.MeanSquaredError(squared=False), False),
        "r2": MetricFactory(lambda _: tm.R2Score(), True, needs="distinct"),
        "mse": MetricFactory(lambda _: tm.MeanSquaredError(), False),
    },
    "multilabel": {
        "accuracy": MetricFactory(
            lambda k: tm.classification.MultilabelAccuracy(num_labels=k, average="micro", ignore_index=-1), True
        ),
        "f1_macro": MetricFactory(
            lambda k: tm.classification.MultilabelF1Score(num_labels=k, average="macro", ignore_index=-1), True
        ),
        "auroc": MetricFactory(
            lambda k: tm.classification.MultilabelAUROC(num_labels=k, average="macro", ignore_index=-1),
            True,
            needs="both_values_per_label",
        ),
    },
}
DEFAULT_METRICS = {
    "classification": ("accuracy", "f1_macro"),
    "binary": ("accuracy", "auroc"),
    "regression": ("mae", "rmse", "r2"),
    "multilabel": ("accuracy", "f1_macro"),
}
#: the task kinds a table, image folder or Python dataset may declare
DECLARABLE_KINDS = tuple(METRIC_CATALOG)
#: metrics that read each row's group (``dataset.group_by``) beside its label
GROUPED_METRICS = ("gauc",)


def declared_task(
    name: str,
    kind: str,
    size: int = 1,
    *,
    metrics: Sequence[str] | None = None,
    primary: str | None = None,
    masked: bool = False,
    shift: float = 0.0,
    scale: float = 1.0,
    given: str | None = None,
) -> TaskSpec:
    """A TaskSpec for a declared task of ``kind`` with ``size`` classes (classification) or labels
    (multilabel). ``metrics`` picks from :data:`METRIC_CATALOG` (default :data:`DEFAULT_METRICS`);
    ``primary`` defaults to the first metric; ``masked`` makes loss and metrics skip missing labels.
    ``given``: a
    binary task; every metric is also scored on that task's positive rows, as ``<metric>_given_<given>``
    (the conversion rate on clicked rows beside the click-and-convert rate on all rows)."""
    catalog = METRIC_CATALOG[kind]
    chosen = list(metrics) if metrics else list(DEFAULT_METRICS[kind])
    if given is not None:
        if kind == "multilabel":
            raise ConfigError(f"dataset.tasks.{name}.given: a multilabel task cannot be scored on another task's rows")
        chosen += [m + given_suffix(given) for m in chosen]
    factories: dict[str, Callable[[], object]] = {}
    shown: dict[str, str] = {}  # as written -> the metric's name in results (no dots: a module key)
    for metric in chosen:
        base = (
            metric[: -len(given_suffix(given))]
            if given is not None and metric.endswith(given_suffix(given))
            else metric
        )
        if base in catalog:
            factory = MetricFactory(
                partial(catalog[base].build, size), catalog[base].higher_is_better, catalog[base].needs
            )
        elif is_user_metric(base):  # an import path or an installed entry point (mtlrun.metrics)
            factory = MetricFactory(*user_metric(base, f"dataset.tasks.{name}.metrics", kind, size))
        else:
            raise choices_error(f"dataset.tasks.{name}.metrics", metric, list(catalog))
        shown[metric] = base.rsplit(".", 1)[-1] + metric[len(base) :]
        if shown[metric] in factories:
            raise ConfigError(f"dataset.tasks.{name}.metrics names two metrics called {shown[metric]}")
        factories[shown[metric]] = factory
    primary = shown.get(primary or chosen[0], primary or chosen[0])
    if primary not in factories:
        raise choices_error(f"dataset.tasks.{name}.primary", primary, list(factories))
    if kind == "classification":
        loss: Callable[[Tensor, Tensor], Tensor] = masked_cross_entropy if masked else F.cross_entropy
        out_dim = size
    elif kind == "binary":
        loss, out_dim = (masked_binary_loss if masked else _binary_loss), 1
    elif kind == "regression":
        loss, out_dim = (MaskedStandardizedMSE if masked else StandardizedMSE)(shift, scale), 1
    else:
        loss, out_dim = (masked_binary_loss if masked else multilabel_loss), size
    return TaskSpec(
        name=name,
        kind=kind,
        out_dim=out_dim,
        loss=loss,
        metrics=factories,
        primary=primary,
        target_shift=shift,
        target_scale=scale,
        masked=masked,
        given=given,
    )

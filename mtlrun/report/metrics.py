"""Per-task evaluation with torchmetrics, and the normalised score that picks the best epoch."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from mtlrun.data.base import TaskSpec, TensorSplit

Metrics = dict[str, dict[str, float]]  # {task: {metric: value}}


class TaskEvaluator:
    """Holds one torchmetrics collection per task, on the model's device."""

    def __init__(self, tasks: Mapping[str, TaskSpec], device: torch.device) -> None:
        from torchmetrics import MetricCollection

        self.tasks = dict(tasks)
        self.collections = {
            name: MetricCollection({m: factory() for m, factory in spec.metrics.items()}).to(device)
            for name, spec in self.tasks.items()
        }

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: TensorSplit, batch_size: int) -> tuple[Metrics, dict[str, float]]:
        """Return ``({task: {metric: value}}, {task: mean loss})`` on ``split``."""
        was_training = model.training
        model.eval()
        for collection in self.collections.values():
            collection.reset()
        loss_sums = {t: torch.zeros((), device=split.device) for t in self.tasks}
        for x, targets in split.batches(batch_size):
            outputs = model(x)
            for name, spec in self.tasks.items():
                loss_sums[name] += spec.loss(outputs[name], targets[name]) * x.shape[0]
                self.collections[name].update(spec.predictions(outputs[name]), targets[name])
        model.train(was_training)
        metrics = {
            name: {m: float(v) for m, v in collection.compute().items()}
            for name, collection in self.collections.items()
        }
        return metrics, {t: float(s) / len(split) for t, s in loss_sums.items()}


def normalized_score(
    metrics: Metrics, reference: Metrics, primary: Mapping[str, str], directions: Mapping[str, Mapping[str, bool]]
) -> float:
    """Mean over tasks of ``d * (m - ref) / |ref|`` on each task's primary metric (d = +1 if higher
    is better). The reference is the first validation; a zero reference counts as 1."""
    scores = []
    for task, metric in primary.items():
        value, ref = metrics[task][metric], reference[task][metric]
        sign = 1.0 if directions[task][metric] else -1.0
        scores.append(sign * (value - ref) / (abs(ref) if ref != 0 else 1.0))
    score = sum(scores) / len(scores)
    return score if math.isfinite(score) else -math.inf

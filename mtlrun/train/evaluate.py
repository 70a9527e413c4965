"""Per-task evaluation with torchmetrics (the best epoch is chosen with ``mtlrun.results.objective``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.data.multi_input import is_multi_input

Metrics = dict[str, dict[str, float]]  # {task: {metric: value}}

#: metric inputs are gathered over batches and handed to torchmetrics in chunks of at least this
#: many prediction elements: each ``update`` call costs a fixed fraction of a millisecond of Python
#: (per metric), which on small models is a quarter of a validation pass when paid per batch;
#: the cap keeps the memory of dense predictions (segmentation maps) bounded
CHUNK_ELEMENTS = 1 << 20


class TaskEvaluator:
    """Holds one torchmetrics collection per task, on the model's device."""

    def __init__(self, tasks: Mapping[str, TaskSpec], device: torch.device) -> None:
        self.tasks = dict(tasks)
        self.device = device
        self._collections: dict[str, Any] | None = None
        #: data parallel: each rank evaluates its shard of every batch; the losses are all-reduced
        #: and torchmetrics syncs its states across ranks when it computes
        self.dp: Any = None

    @property
    def collections(self) -> dict[str, Any]:
        """One ``MetricCollection`` per task, built at the first evaluation: torchmetrics (with the
        scipy.signal and matplotlib it imports) loads then, not before the first training step."""
        if self._collections is None:
            from torchmetrics import MetricCollection

            self._collections = {
                name: MetricCollection({m: factory() for m, factory in spec.metrics.items()}).to(self.device)
                for name, spec in self.tasks.items()
            }
        return self._collections

    def _update(self, task: str, pairs: list[tuple[Tensor, Tensor]]) -> None:
        """One metric update with the gathered ``(predictions, target)`` pairs; empties ``pairs``."""
        if pairs:
            preds, target = (torch.cat(parts) for parts in zip(*pairs))
            self.collections[task].update(preds, target)
            pairs.clear()

    def reset(self) -> None:
        for collection in self.collections.values():
            collection.reset()

    def compute(self) -> Metrics:
        """``{task: {metric: value}}`` of everything given to the metrics since :meth:`reset`."""
        return {
            name: {m: float(v) for m, v in collection.compute().items()}
            for name, collection in self.collections.items()
        }

    @torch.no_grad()
    def score(self, pairs: Mapping[str, list[tuple[Tensor, Tensor]]]) -> Metrics:
        """The metrics of gathered ``{task: [(predictions, target), ...]}``: reset, update, compute.

        What the metrics add to an evaluation's forward passes (``make bench`` times it alone).
        """
        self.reset()
        for task, task_pairs in pairs.items():
            self._update(task, list(task_pairs))
        return self.compute()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: Any, batch_size: int) -> tuple[Metrics, dict[str, float]]:
        """Return ``({task: {metric: value}}, {task: mean loss})`` on ``split``.

        On a multi-input split each task is evaluated on its own split (``model.forward_task``).
        """
        was_training = model.training
        model.eval()
        self.reset()
        loss_sums = {t: torch.zeros((), device=self.device) for t in self.tasks}
        counts = {t: torch.zeros((), device=self.device) for t in self.tasks}  # present labels
        parts: list[tuple[Any, Mapping[str, TaskSpec], Callable[[Tensor], Any]]]
        if is_multi_input(split):
            forward_task: Callable[[Tensor, str], Tensor] = model.forward_task  # type: ignore[assignment]

            def one_task(task: str) -> Callable[[Tensor], dict[str, Tensor]]:
                return lambda x: {task: forward_task(x, task)}

            parts = [(split.splits[t], {t: spec}, one_task(t)) for t, spec in self.tasks.items()]
        else:
            parts = [(split, self.tasks, model)]
        pending: dict[str, list[tuple[Tensor, Tensor]]] = {t: [] for t in self.tasks}
        for part, specs, forward in parts:
            for x, targets in part.batches(batch_size):
                if self.dp is not None:
                    x, targets = self.dp.shard((x, targets))
                    if x.shape[0] == 0:
                        continue
                outputs = forward(x)
                for name, spec in specs.items():
                    n = spec.label_count(targets[name]) if spec.masked else x.shape[0]
                    loss_sums[name] += spec.loss(outputs[name], targets[name]) * n
                    counts[name] += n
                    pair = spec.metric_inputs(outputs[name], targets[name])  # missing labels skipped
                    if pair is not None:
                        pending[name].append(pair)
                        if sum(p.numel() for p, _ in pending[name]) >= CHUNK_ELEMENTS:
                            self._update(name, pending[name])
        for name, pairs in pending.items():
            self._update(name, pairs)
        model.train(was_training)
        if self.dp is not None:  # the global sums
            names = list(self.tasks)
            total = self.dp.sum(torch.stack([loss_sums[t] for t in names] + [counts[t] for t in names]))
            loss_sums = dict(zip(names, total[: len(names)]))
            counts = dict(zip(names, total[len(names) :]))
        return self.compute(), {t: float(s) / max(float(counts[t]), 1.0) for t, s in loss_sums.items()}

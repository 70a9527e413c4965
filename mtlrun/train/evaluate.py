"""Per-task evaluation with torchmetrics (the best epoch is chosen with ``mtlrun.results.objective``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.data.base import GROUP_KEY, TaskSpec, given_key
from mtlrun.data.multi_input import is_multi_input

Metrics = dict[str, dict[str, float]]  # {task: {metric: value}}
#: what a metric update takes: predictions, targets, and the rows' groups (None: no groups)
Rows = tuple[Tensor, Tensor, Tensor | None]
#: the key of a task's metrics scored on the positive rows of its ``given`` task only
GIVEN = "{task}@given"

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
        scipy.signal and matplotlib it imports) loads then, not before the first training step.

        A task with a ``given`` task has a second collection (key :data:`GIVEN`) for the metrics
        scored on that task's positive rows only."""
        if self._collections is None:
            from torchmetrics import MetricCollection

            self._collections = {}
            for name, spec in self.tasks.items():
                given = spec.given_metrics()
                every = {m: f() for m, f in spec.metrics.items() if m not in given}
                self._collections[name] = MetricCollection(every).to(self.device)
                if given:
                    conditional = {m: spec.metrics[m]() for m in given}
                    self._collections[GIVEN.format(task=name)] = MetricCollection(conditional).to(self.device)
        return self._collections

    def _update(self, key: str, pairs: list[Any]) -> None:
        """One metric update with the gathered ``(predictions, target[, groups])`` rows; empties ``pairs``."""
        if pairs:
            preds, target = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
            groups = [p[2] for p in pairs if len(p) > 2 and p[2] is not None]
            if groups:
                self.collections[key].update(preds, target, groups=torch.cat(groups))
            else:
                self.collections[key].update(preds, target)
            pairs.clear()

    def reset(self) -> None:
        for collection in self.collections.values():
            collection.reset()

    def compute(self) -> Metrics:
        """``{task: {metric: value}}`` of everything given to the metrics since :meth:`reset`."""
        collections = self.collections
        results: Metrics = {}
        for name in self.tasks:
            values = {m: float(v) for m, v in collections[name].compute().items()}
            conditional = collections.get(GIVEN.format(task=name))
            if conditional is not None:
                values.update({m: float(v) for m, v in conditional.compute().items()})
            results[name] = values
        return results

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
        pending: dict[str, list[Rows]] = {key: [] for key in self.collections}
        given_output = getattr(model, "given_output", None)

        def gather(key: str, rows: Rows | None) -> None:
            if rows is not None:
                pending[key].append(rows)
                if sum(p[0].numel() for p in pending[key]) >= CHUNK_ELEMENTS:
                    self._update(key, pending[key])

        for part, specs, forward in parts:
            for x, targets in part.batches(batch_size):
                if self.dp is not None:
                    x, targets = self.dp.shard((x, targets))
                    if x.shape[0] == 0:
                        continue
                outputs = forward(x)
                groups = targets.get(GROUP_KEY)
                for name, spec in specs.items():
                    n = spec.label_count(targets[name]) if spec.masked else x.shape[0]
                    loss_sums[name] += spec.loss(outputs[name], targets[name]) * n
                    counts[name] += n
                    # missing labels skipped
                    gather(name, spec.metric_rows(outputs[name], targets[name], groups=groups))
                    key = GIVEN.format(task=name)
                    if key in pending and spec.given is not None:
                        rows = targets[given_key(spec.given)] == 1  # NaN (no label) compares unequal
                        output = given_output(name, x, outputs) if given_output is not None else outputs[name]
                        gather(key, spec.metric_rows(output, targets[name], rows=rows, groups=groups))
        for key, rows in pending.items():
            self._update(key, rows)
        model.train(was_training)
        if self.dp is not None:  # the global sums
            names = list(self.tasks)
            total = self.dp.sum(torch.stack([loss_sums[t] for t in names] + [counts[t] for t in names]))
            loss_sums = dict(zip(names, total[: len(names)]))
            counts = dict(zip(names, total[len(names) :]))
        return self.compute(), {t: float(s) / max(float(counts[t]), 1.0) for t, s in loss_sums.items()}

"""The sink interface every experiment-tracker logger implements, and the ``LOGGERS`` registry.

The run folder stays the record of a run; a logger mirrors it into a tracker (TensorBoard,
MLflow, CSV) so runs can be browsed with the tracker's own tools. A sink sees plain Python
values only: the resolved config, then flat ``{name: value}`` scalars per epoch and at test time.

Scalar names: ``train/loss/<task>``, ``train/weight/<task>`` (the balancer's weights),
``train/<extra loss>``, ``train/schedule/<task>`` (a task schedule's factor),
``balancer/<statistic>``, ``val/loss/<task>``, ``val/<task>/<metric>`` and
``test/<best|last>/<task>/<metric>``; the step is the epoch.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtlrun.registry import Registry

log = logging.getLogger("mtlrun")

LOGGERS: Registry[RunLogger] = Registry("logger")


def epoch_scalars(record: Any) -> dict[str, float]:
    """Flatten one epoch's record (``mtlrun.train.loop.EpochRecord``) into named scalars."""
    scalars: dict[str, float] = {}
    for task, value in record.train_loss.items():
        scalars[f"train/loss/{task}"] = value
    for task, value in record.weights.items():
        scalars[f"train/weight/{task}"] = value
    for name, value in record.extra_losses.items():
        scalars[f"train/{name}"] = value
    for name, value in getattr(record, "balancer_extras", {}).items():
        scalars[f"balancer/{name}"] = value
    for task, value in (getattr(record, "schedule", None) or {}).items():
        scalars[f"train/schedule/{task}"] = value
    if getattr(record, "lr", None) is not None:
        scalars["train/lr"] = record.lr
    for task, value in record.val_loss.items():
        scalars[f"val/loss/{task}"] = value
    for task, metrics in record.val.items():
        for metric, value in metrics.items():
            scalars[f"val/{task}/{metric}"] = value
    return {k: float(v) for k, v in scalars.items()}


def test_scalars(which: str, metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {
        f"test/{which}/{task}/{metric}": float(v) for task, values in metrics.items() for metric, v in values.items()
    }


def run_label(output_dir: Path) -> str:
    """A readable, unique name for the run: its folder relative to the working folder, or its last parts."""
    try:
        relative = output_dir.resolve().relative_to(Path.cwd().resolve())
        parts = relative.parts
    except ValueError:
        parts = output_dir.parts[-3:]
    return "_".join(parts) or output_dir.name


class RunLogger(ABC):
    """One tracker sink. ``log_epoch`` and ``log_test`` reduce to :meth:`log_scalars`."""

    def __init__(self, output_dir: Path, run_name: str) -> None:
        self.output_dir = Path(output_dir)
        self.run_name = run_name

    @abstractmethod
    def log_config(self, config: Mapping[str, Any]) -> None:
        """Record the resolved config (a nested plain mapping)."""

    @abstractmethod
    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        """Record named scalars at ``step`` (the epoch)."""

    @abstractmethod
    def close(self, status: str) -> None:
        """Flush and finish; ``status`` is the run's final status (completed, diverged, failed, interrupted)."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this tracker's run (plain values; checkpointed)."""
        return {}

    def resume(self, state: dict[str, Any]) -> None:
        """Continue the run described by :meth:`state_dict` instead of starting a new one; what
        was logged after that state (epochs the resumed run trains again) is replaced or repeated.
        A sink without a run of its own (``none``) has nothing to continue."""
        return None

    def log_epoch(self, record: Any) -> None:
        self.log_scalars(epoch_scalars(record), record.epoch)

    def log_test(self, which: str, epoch: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        self.log_scalars(test_scalars(which, metrics), epoch)


class GuardedLogger(RunLogger):
    """Keeps training going when a tracker breaks mid-run: the first error is logged, the sink dropped.

    The run folder still records everything; only the mirror stops.
    """

    def __init__(self, sink: RunLogger, name: str) -> None:
        super().__init__(sink.output_dir, sink.run_name)
        self.sink: RunLogger | None = sink
        self.name = name
        self.closed = False

    def _call(self, method: str, *args: Any) -> None:
        if self.sink is None:
            return
        try:
            getattr(self.sink, method)(*args)
        except Exception as ex:  # a tracker outage must not kill a long run
            log.warning("logger=%s stopped after an error in %s: %s: %s", self.name, method, type(ex).__name__, ex)
            self.sink = None

    def log_config(self, config: Mapping[str, Any]) -> None:
        self._call("log_config", config)

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        self._call("log_scalars", scalars, step)

    def log_epoch(self, record: Any) -> None:
        self._call("log_epoch", record)

    def state_dict(self) -> dict[str, Any]:
        if self.sink is None:
            return {}
        try:
            return self.sink.state_dict()
        except Exception as ex:
            log.warning("logger=%s: could not save its state: %s: %s", self.name, type(ex).__name__, ex)
            return {}

    def resume(self, state: dict[str, Any]) -> None:
        self._call("resume", state)

    def log_test(self, which: str, epoch: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        self._call("log_test", which, epoch, metrics)

    def close(self, status: str) -> None:
        if not self.closed:
            self.closed = True
            self._call("close", status)

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
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtlrun.errors import ConfigError
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


class TrackerFailed(RuntimeError):
    """A tracker that started but failed during the run: the run fails with it (exit status 1),
    its checkpoint kept, so ``resume=FOLDER`` continues it and the tracker's run once the tracker works."""


def check_writable_folder(path: Path, key: str) -> None:
    """``path`` is a folder this process can write into, or one it can create: else a
    :class:`ConfigError` naming ``key``. Creates nothing, so it runs before the run folder exists."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={path} is a file, not a folder; choose another {key}")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}={path} cannot be created: {existing} is not a folder; choose another {key}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({existing} is not writable)"
        raise ConfigError(f"{key}={path} is not writable{where}; choose another {key}")


class RunLogger(ABC):
    """One tracker sink. ``log_epoch`` and ``log_test`` reduce to :meth:`log_scalars`.

    Two checks keep a tracker that cannot work from starting a run: :meth:`preflight` (the options
    alone, before the run folder exists) and :meth:`start` (the tracker opened, once it does); each
    raises a :class:`ConfigError` naming the key.
    """

    def __init__(self, output_dir: Path, run_name: str) -> None:
        self.output_dir = Path(output_dir)
        self.run_name = run_name

    @classmethod
    def preflight(cls, options: Mapping[str, Any]) -> None:
        """Check what the options alone can tell (folders writable, URIs well formed) before the
        run folder exists; ``options`` are those of the ``logger`` node, already type-checked."""
        return None

    def start(self) -> None:
        """Open the tracker (create its folder, reach its server) before training starts."""
        return None

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
    """Turns a tracker's error during the run into one :class:`TrackerFailed` naming the logger and
    the call, so the run fails loudly instead of finishing with a silently incomplete mirror.

    After the first error the sink is dropped; closing a run that already failed for another
    reason only logs a tracker error, so that reason stays the one reported.
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
        except Exception as ex:
            self.sink = None
            reason = " ".join(str(ex).split()) or "no message"
            raise TrackerFailed(f"logger={self.name} failed in {method}: {type(ex).__name__}: {reason}") from ex

    def start(self) -> None:
        if self.sink is not None:
            self.sink.start()

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
        if self.closed:
            return
        self.closed = True
        if status == "completed":
            self._call("close", status)
            return
        try:
            self._call("close", status)
        except TrackerFailed as ex:  # the run ends for another reason already: keep that one
            log.warning("%s", ex)

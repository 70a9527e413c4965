"""Experiment-tracker loggers (``logger=none|csv|tensorboard|mlflow``): mirrors of the run folder.

Tracker packages are imported only when their logger is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlrun.errors import ConfigError
from mtlrun.loggers import csv_logger, mlflow_logger, none, tensorboard_logger  # noqa: F401  (registration)
from mtlrun.loggers.base import (
    LOGGERS,
    GuardedLogger,
    RunLogger,
    TrackerFailed,
    epoch_scalars,
    run_label,
    test_scalars,
)


def check_logger(options: dict[str, Any] | None) -> None:
    """The chosen tracker's :meth:`~RunLogger.preflight`: a :class:`ConfigError` before the run folder exists."""
    options = dict(options or {})
    name = str(options.get("name", "none"))
    if name in LOGGERS:
        LOGGERS.get(name).preflight({k: v for k, v in options.items() if k != "name"})  # type: ignore[attr-defined]


def build_logger(options: dict[str, Any] | None, output_dir: Path) -> RunLogger:
    """The sink named by ``options['name']`` (``logger.*`` of the config), validated, started, guarded.

    A tracker that cannot start is a :class:`ConfigError` naming the logger, so the run stops
    before training, as a config mistake (its folder removed, exit status 2).
    """
    options = dict(options or {})
    name = options.get("name", "none")
    try:
        sink = LOGGERS.build(name, options, output_dir=Path(output_dir), run_name=run_label(Path(output_dir)))
        sink.start()
    except ConfigError:
        raise
    except Exception as ex:
        reason = " ".join(str(ex).split()) or "no message"
        raise ConfigError(f"logger={name} cannot start: {type(ex).__name__}: {reason}") from ex
    return GuardedLogger(sink, name)


__all__ = [
    "LOGGERS",
    "RunLogger",
    "GuardedLogger",
    "TrackerFailed",
    "build_logger",
    "check_logger",
    "epoch_scalars",
    "test_scalars",
    "run_label",
]

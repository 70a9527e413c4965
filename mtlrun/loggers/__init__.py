"""Experiment-tracker loggers (``logger=none|csv|tensorboard|mlflow``): mirrors of the run folder.

Tracker packages are imported only when their logger is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlrun.loggers import csv_logger, mlflow_logger, none, tensorboard_logger  # noqa: F401  (registration)
from mtlrun.loggers.base import LOGGERS, GuardedLogger, RunLogger, epoch_scalars, run_label, test_scalars


def build_logger(options: dict[str, Any] | None, output_dir: Path) -> RunLogger:
    """The sink named by ``options['name']`` (``logger.*`` of the config), validated, guarded."""
    options = dict(options or {})
    name = options.get("name", "none")
    sink = LOGGERS.build(name, options, output_dir=Path(output_dir), run_name=run_label(Path(output_dir)))
    return GuardedLogger(sink, name)


__all__ = ["LOGGERS", "RunLogger", "GuardedLogger", "build_logger", "epoch_scalars", "test_scalars", "run_label"]

"""``logger=none``: the run folder (metrics.jsonl, summary.json) is the only record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtlrun.loggers.base import LOGGERS, RunLogger


@LOGGERS.register("none")
class NoLogger(RunLogger):
    """Mirrors nothing: everything a tracker would show is already in the run folder."""

    def log_config(self, config: Mapping[str, Any]) -> None:
        return None

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        return None

    def close(self, status: str) -> None:
        return None

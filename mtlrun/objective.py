"""The single number a run returns to Hydra's sweeper (e.g. optuna): higher is better.

``score = mean over tasks of d_t * m_t``, where ``m_t`` is task t's primary metric on the
validation split at the best epoch and ``d_t = +1`` if higher is better, ``-1`` otherwise; so an
optuna search uses ``direction: maximize``. Metrics on different scales weigh differently: search
over task sets whose primary metrics are comparable, or choose them with ``tasks.primary``. A run
without results (failed, diverged) has no score (None), which optuna records as a failed trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def run_score(summary: Mapping[str, Any]) -> float | None:
    if summary.get("status") != "completed":
        return None
    try:
        values = summary["metrics"]["best"]["val"]
        terms = [
            (1.0 if summary["directions"][task][metric] else -1.0) * float(values[task][metric])
            for task, metric in summary["primary"].items()
        ]
    except (KeyError, TypeError, ValueError):
        return None
    score = sum(terms) / len(terms) if terms else math.nan
    return score if math.isfinite(score) else None

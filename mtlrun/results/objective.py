"""Which result is better: one rule for the best epoch, Δm, the compare rank, Pareto dominance and
the sweeper.

Relative change of ``value`` against ``reference`` for a metric with direction ``d`` (+1 when
higher is better, -1 otherwise)::

    change = d · (value − reference) / |reference|

Positive means better. The zero rule: when the reference is 0 (or either value is not finite) the
change is undefined and the metric is left out of every mean it would enter, never divided by a
made-up denominator. A mean with nothing defined is None.

>>> signed_relative_change(0.75, 0.5, higher_is_better=True)
0.5
>>> signed_relative_change(0.75, 0.5, higher_is_better=False)
-0.5
>>> signed_relative_change(1.0, 0.0, higher_is_better=True) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtlrun.results.run_folder import Summary

Metrics = Mapping[str, Mapping[str, float]]  # {task: {metric: value}}
#: the sweeper's default objective: the mean direction-signed primary metric at the best epoch
PRIMARY_MEAN = "primary_mean"


def signed_relative_change(value: float, reference: float, higher_is_better: bool) -> float | None:
    """``d·(value − reference)/|reference|``, or None when undefined (zero or non-finite reference)."""
    if reference == 0 or not (math.isfinite(value) and math.isfinite(reference)):
        return None
    sign = 1.0 if higher_is_better else -1.0
    return sign * (value - reference) / abs(reference)


def defined_mean(values: Iterable[float | None]) -> float | None:
    """The mean of the defined values (None when there is none)."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def primary_score(
    metrics: Metrics, reference: Metrics, primary: Mapping[str, str], directions: Mapping[str, Mapping[str, bool]]
) -> float | None:
    """Mean over tasks of the relative change of each task's primary metric against ``reference``."""
    return defined_mean(
        signed_relative_change(metrics[task][metric], reference[task][metric], directions[task][metric])
        for task, metric in primary.items()
    )


def run_objective(summary: Summary, objective: str = PRIMARY_MEAN) -> float | None:
    """The number a run returns to Hydra's sweeper (e.g. optuna); higher is better.

    ``primary_mean``: mean over tasks of ``d_t · m_t``, each task's primary metric on the validation
    split at the best epoch. ``TASK/METRIC``: that one validation metric at the best epoch, signed
    so that higher is better. A run without results (failed, diverged) has no objective (None),
    which optuna records as a failed trial.
    """
    if not summary.completed:
        return None
    values = summary.results("best", "val")
    try:
        if objective == PRIMARY_MEAN:
            terms = [
                (1.0 if summary.directions[task][metric] else -1.0) * values[task][metric]
                for task, metric in summary.primary.items()
            ]
        else:
            task, _, metric = objective.partition("/")
            terms = [(1.0 if summary.directions[task][metric] else -1.0) * values[task][metric]]
    except KeyError:
        return None
    score = sum(terms) / len(terms) if terms else math.nan
    return score if math.isfinite(score) else None

"""The statistics of the negative-transfer report: Welch's two-sided test, its interval, Holm's correction.

Kept apart from the definitions of Δ_t so that each formula can be checked against scipy on known
numbers. scipy is imported inside the functions: a run that writes no report never pays for it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mtlrun.config.schema import CORRECTIONS


@dataclass(frozen=True)
class WelchResult:
    """Welch's unequal-variance comparison of mean(a) − mean(b)."""

    difference: float
    p_value: float  # two-sided
    ci_low: float
    ci_high: float
    df: float | None  # Welch-Satterthwaite degrees of freedom (None when both variances are 0)


def welch(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> WelchResult:
    """Two-sided Welch t-test of mean(a) = mean(b), and the ``level`` interval of mean(a) − mean(b).

    Needs two values on each side. When both samples have zero variance the test is degenerate:
    p is 0 if the means differ and 1 if they are equal, and the interval is the difference itself.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's test needs at least two values on each side")
    from scipy import stats

    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    diff = mean_a - mean_b
    var_a, var_b = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se2 = var_a + var_b
    if se2 == 0:
        return WelchResult(diff, 1.0 if diff == 0 else 0.0, diff, diff, None)
    df = se2**2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    se = math.sqrt(se2)
    p = float(2.0 * stats.t.sf(abs(diff) / se, df))
    half = float(stats.t.ppf(0.5 + level / 2.0, df)) * se
    return WelchResult(diff, min(1.0, p), diff - half, diff + half, df)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (family-wise error across the given tests).

    Sorted ascending, the i-th smallest (i from 1) becomes ``max_{j<=i} min(1, (m − j + 1)·p_(j))``.
    """
    order = sorted(p_values, key=lambda k: p_values[k])
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * p_values[key]))
        adjusted[key] = running
    return adjusted


def adjust(p_values: Mapping[str, float], method: str) -> dict[str, float]:
    """``report.correction``: Holm's adjusted p-values, or the raw ones (``none``)."""
    if method == "holm":
        return holm(p_values)
    if method == "none":
        return dict(p_values)
    raise ValueError(f"unknown correction {method!r}; choose from: {', '.join(CORRECTIONS)}")

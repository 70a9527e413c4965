"""Negative transfer: relative improvement over single-task baselines, Δm, verdicts, task grouping.

Definitions (Maninis et al., CVPR 2019; Vandenhende et al., TPAMI 2021). For metric m of task t
with direction d (+1 if higher is better, else -1):

- ``Δ_t = mean_m d·(MTL_m − STL_m)/|STL_m|·100``: the relative improvement of task t; positive
  means sharing helped.
- ``delta_m = mean_t Δ_t`` (improvement, higher is better) and ``delta_m_drop = mean over every
  metric of every task of −d·(MTL_m − STL_m)/|STL_m|·100`` (drop, lower is better), the form of
  the Nash-MTL and FAMO tables.
- A metric whose STL value is exactly 0 has no relative change; it is left out of Δ_t and Δm
  and listed under ``excluded`` (an absolute difference would mix units into a percentage).

Verdicts need seed statistics: each seed's metrics (MTL and STL alike) are mapped to the same
relative score against the mean STL value, so the MTL scores average to Δ_t and the STL scores to
0. A two-sided Welch t-test at ``alpha`` compares the two sets of scores; the sign of Δ_t gives the
direction of a significant difference. The 95% confidence interval of Δ_t is Welch's interval of
the difference of the score means (the mean STL value taken as the fixed reference of the relative
form). The p-values of a run's tasks are then adjusted together (Holm by default, :func:`decide`),
and a task needs ``min_seeds`` seeds on each side for a verdict.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtlrun.results.objective import signed_relative_change
from mtlrun.results.transfer_report import NEGATIVE, NO_DIFFERENCE, POSITIVE, UNTESTED  # noqa: F401

Metrics = Mapping[str, float]  # {metric: value}


def relative_change(mtl: float, stl: float, higher_is_better: bool) -> float | None:
    """``d·(mtl − stl)/|stl|·100`` in percent, or None when undefined (``mtlrun.results.objective``'s zero rule)."""
    change = signed_relative_change(mtl, stl, higher_is_better)
    return None if change is None else change * 100.0


def task_delta(mtl: Metrics, stl: Metrics, directions: Mapping[str, bool]) -> float | None:
    """Δ_t: mean relative improvement over the metrics with a defined change."""
    changes = [relative_change(mtl[m], stl[m], directions[m]) for m in directions if m in mtl and m in stl]
    defined = [c for c in changes if c is not None]
    return sum(defined) / len(defined) if defined else None


def delta_m(mtl: Mapping[str, Metrics], stl: Mapping[str, Metrics], directions: Mapping[str, Mapping[str, bool]]):
    """Mean of Δ_t over tasks (improvement form; higher is better)."""
    deltas = [task_delta(mtl[t], stl[t], directions[t]) for t in directions]
    defined = [d for d in deltas if d is not None]
    return sum(defined) / len(defined) if defined else None


def delta_m_drop(
    mtl: Mapping[str, Metrics], stl: Mapping[str, Metrics], directions: Mapping[str, Mapping[str, bool]]
) -> float | None:
    """Mean over every metric of every task of ``−d·(MTL − STL)/|STL|·100`` (lower is better)."""
    drops = []
    for task, dirs in directions.items():
        for metric, higher in dirs.items():
            change = relative_change(mtl[task][metric], stl[task][metric], higher)
            if change is not None:
                drops.append(-change)
    return sum(drops) / len(drops) if drops else None


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (ddof=1), which one value does not define: None."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return mean, std


@dataclass
class TaskVerdict:
    task: str
    delta: float | None
    verdict: str
    p_value: float | None  # raw two-sided Welch p
    n_mtl: int
    n_stl: int
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    ci: tuple[float, float] | None = None  # 95% interval of Δ_t (percent)
    p_adjusted: float | None = None  # after the correction across the run's tasks


def untested(n: int) -> str:
    """The verdict of a task with too few seeds: ``untested (2 seeds)``."""
    return f"{UNTESTED} ({n} seed{'' if n == 1 else 's'})"


def judge_task(
    task: str,
    mtl_runs: Sequence[Metrics],
    stl_runs: Sequence[Metrics],
    directions: Mapping[str, bool],
    alpha: float = 0.05,
    min_seeds: int = 3,
) -> TaskVerdict:
    """Δ_t from the seed means, its 95% interval and a two-sided Welch test on per-seed scores.

    The verdict uses the raw p-value; :func:`decide` redoes it with the p-values adjusted across
    tasks. Fewer than ``min_seeds`` seeds on either side: no test, verdict ``untested (n seeds)``.
    """
    from mtlrun.report.stats import welch

    metric_names = [m for m in directions if all(m in r for r in mtl_runs) and all(m in r for r in stl_runs)]
    stl_mean = {m: mean_std([r[m] for r in stl_runs])[0] for m in metric_names}
    usable = [m for m in metric_names if stl_mean[m] != 0]
    excluded = [m for m in metric_names if stl_mean[m] == 0]

    def score(run: Metrics) -> float:
        return sum(relative_change(run[m], stl_mean[m], directions[m]) for m in usable) / len(usable)

    metrics: dict[str, dict[str, Any]] = {}
    for m in metric_names:
        mtl_mean, mtl_std = mean_std([r[m] for r in mtl_runs])
        s_mean, s_std = mean_std([r[m] for r in stl_runs])
        metrics[m] = {
            "mtl": mtl_mean,
            "mtl_std": mtl_std,
            "stl": s_mean,
            "stl_std": s_std,
            "higher_is_better": directions[m],
            "delta": relative_change(mtl_mean, s_mean, directions[m]),
        }
    n_mtl, n_stl = len(mtl_runs), len(stl_runs)
    if not usable:  # Δ_t is undefined, so nothing was tested: never "no significant difference"
        verdict = f"{UNTESTED} (the baseline scores 0 on {', '.join(excluded) or 'no shared metric'}: Δ undefined)"
        return TaskVerdict(task, None, verdict, None, n_mtl, n_stl, metrics, excluded)
    mtl_scores = [score(r) for r in mtl_runs]
    stl_scores = [score(r) for r in stl_runs]
    delta = mean_std(mtl_scores)[0]
    result = welch(mtl_scores, stl_scores) if n_mtl >= 2 and n_stl >= 2 else None
    ci = (result.ci_low, result.ci_high) if result is not None else None
    if result is None or min(n_mtl, n_stl) < max(2, min_seeds):
        return TaskVerdict(task, delta, untested(min(n_mtl, n_stl)), None, n_mtl, n_stl, metrics, excluded, ci)
    verdict = _verdict(delta, result.p_value, alpha)
    return TaskVerdict(task, delta, verdict, result.p_value, n_mtl, n_stl, metrics, excluded, ci, result.p_value)


def _verdict(delta: float, p: float, alpha: float) -> str:
    if p < alpha:
        return NEGATIVE if delta < 0 else POSITIVE
    return NO_DIFFERENCE


def decide(verdicts: Mapping[str, TaskVerdict], alpha: float, correction: str = "holm") -> None:
    """Adjust the p-values of the tested tasks together (``holm`` or ``none``) and redo their verdicts."""
    from mtlrun.report.stats import adjust

    tested = {t: v.p_value for t, v in verdicts.items() if v.p_value is not None and v.delta is not None}
    for task, p in adjust(tested, correction).items():
        verdict = verdicts[task]
        verdict.p_adjusted = p
        verdict.verdict = _verdict(verdict.delta, p, alpha)  # type: ignore[arg-type]


def set_partitions(items: Sequence[str], groups: int) -> Iterable[list[list[str]]]:
    """Every partition of ``items`` into exactly ``groups`` non-empty groups."""
    items = list(items)
    if groups == 1:
        yield [items]
        return
    if len(items) == groups:
        yield [[x] for x in items]
        return
    if len(items) < groups:
        return
    first, rest = items[0], items[1:]
    for partition in set_partitions(rest, groups - 1):
        yield [[first], *partition]
    for partition in set_partitions(rest, groups):
        for i in range(len(partition)):
            yield [*partition[:i], [first, *partition[i]], *partition[i + 1 :]]


def grouping_score(partition: Sequence[Sequence[str]], affinity: Mapping[str, Mapping[str, float]]) -> float:
    """TAG's total affinity (Fifty et al., NeurIPS 2021): each task j scores the mean affinity
    Z(i→j) it receives from the other members i of its group (0 when alone); sum over tasks."""
    total = 0.0
    for group in partition:
        for j in group:
            others = [i for i in group if i != j]
            if others:
                total += sum(affinity[i][j] for i in others) / len(others)
    return total


def best_grouping(tasks: Sequence[str], affinity: Mapping[str, Mapping[str, float]], groups: int) -> dict[str, Any]:
    """The split of ``tasks`` into at most ``groups`` groups with the highest total affinity, and the runner-up.

    Exhaustive for up to 8 tasks (at most 4,140 partitions per group count); beyond that a greedy
    search into exactly ``groups`` groups that moves one task at a time while the score improves,
    from the exhaustive best of the first 8, and the runner-up is the best split one move away.
    """
    groups = max(1, min(groups, len(tasks)))
    if len(tasks) <= 8:
        ranked = sorted(
            ([list(g) for g in p] for k in range(1, groups + 1) for p in set_partitions(list(tasks), k)),
            key=lambda p: grouping_score(p, affinity),
            reverse=True,
        )
        best, runner_up = ranked[0], ranked[1] if len(ranked) > 1 else None
        return _grouping_result(best, runner_up, affinity, exhaustive=True)
    head, tail = list(tasks[:8]), list(tasks[8:])
    best = max(set_partitions(head, min(groups, len(head))), key=lambda p: grouping_score(p, affinity))
    best = [list(g) for g in best]
    for task in tail:
        best = max(
            ([*best[:i], [*g, task], *best[i + 1 :]] for i, g in enumerate(best)),
            key=lambda p: grouping_score(p, affinity),
        )
    improved = True
    while improved:
        improved = False
        current = grouping_score(best, affinity)
        for trial in _one_move(best):
            if grouping_score(trial, affinity) > current + 1e-12:
                best, improved = trial, True
                break
    runner_up = max(_one_move(best), key=lambda p: grouping_score(p, affinity), default=None)
    return _grouping_result(best, runner_up, affinity, exhaustive=False)


def _one_move(partition: list[list[str]]) -> Iterable[list[list[str]]]:
    """Every partition that moves one task to another group (no group left empty)."""
    for src, dst in itertools.permutations(range(len(partition)), 2):
        if len(partition[src]) == 1:
            continue
        for task in partition[src]:
            trial = [list(g) for g in partition]
            trial[src].remove(task)
            trial[dst].append(task)
            yield trial


def _grouping_result(
    best: list[list[str]],
    runner_up: list[list[str]] | None,
    affinity: Mapping[str, Mapping[str, float]],
    exhaustive: bool,
) -> dict[str, Any]:
    score = grouping_score(best, affinity)
    second = grouping_score(runner_up, affinity) if runner_up is not None else None
    return {
        "groups": best,
        "score": score,
        "exhaustive": exhaustive,
        "runner_up": runner_up,
        "runner_up_score": second,
        "margin": score - second if second is not None else None,
    }

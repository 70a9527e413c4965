"""Pool run folders into one row per configuration: mean ± std over seeds, Δm, rank and Pareto set.

Shared by ``mtlrun-compare`` and the sweep-end summary. Rows are formed by config keys: by
default the keys whose values differ between the compared runs (``seed`` excepted, so seeds are
pooled); with ``by``, the keys given. Statistics use the completed runs of a row; the sample
standard deviation (ddof=1) needs two of them.

Ranking follows one rule: by default Δm (each run's own-seed Δm from ``transfer.json``, higher is
better) when every row with results has one, else the mean relative primary score; ``rank_by``
picks one explicitly (rows without that value rank last). The mean relative primary score is,
for each task's primary metric, the row's signed relative difference from the mean over rows,
``d * (m - mean) / |mean|`` (``d = +1`` if higher is better), averaged over tasks; higher is better.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtlrun.report.folders import RunRecord
from mtlrun.report.pooling import affects_results
from mtlrun.results.objective import defined_mean, signed_relative_change

#: config keys pooled by default: rows average over them
POOLED_BY_DEFAULT = ("seed",)


@dataclass
class Stat:
    mean: float
    std: float | None
    n: int
    values: list[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat | None:
        finite = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return None
        std = statistics.stdev(finite) if len(finite) > 1 else None
        return cls(statistics.fmean(finite), std, len(finite), finite)

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": self.values}


@dataclass
class Column:
    """One metric column: a task's metric, with its direction."""

    task: str
    metric: str
    higher_is_better: bool
    primary: bool

    @property
    def name(self) -> str:
        return f"{self.task}/{self.metric}"


@dataclass
class Row:
    """One configuration: its label values, its runs and their pooled results."""

    label: dict[str, str]
    runs: list[RunRecord]
    metrics: dict[str, Stat] = field(default_factory=dict)
    delta_m: Stat | None = None
    score: float | None = None
    rank: int | None = None
    pareto: bool = False

    @property
    def completed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.has_metrics]

    @property
    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts

    def status_text(self) -> str:
        counts = self.statuses
        done = counts.get("completed", 0)
        others = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "completed")
        return f"{done}/{len(self.runs)} completed" + (f", {others}" if others else "")

    def title(self) -> str:
        return " ".join(f"{short_key(k)}={v}" for k, v in self.label.items()) or "all runs"


@dataclass
class Comparison:
    rows: list[Row]
    label_keys: list[str]
    differences: dict[str, list[str]]
    pooled: list[str]
    columns: list[Column]
    ranked_by: str
    problems: list[RunRecord]
    #: keys that change results and differ within a row (the row averages them)
    mixed: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ranked_by": self.ranked_by,
            "mixed": self.mixed,
            "label_keys": self.label_keys,
            "differences": self.differences,
            "pooled": self.pooled,
            "columns": [
                {
                    "column": c.name,
                    "task": c.task,
                    "metric": c.metric,
                    "higher_is_better": c.higher_is_better,
                    "primary": c.primary,
                }
                for c in self.columns
            ],
            "rows": [
                {
                    "label": row.label,
                    "title": row.title(),
                    "rank": row.rank,
                    "pareto": row.pareto,
                    "runs": len(row.runs),
                    "completed": len(row.completed),
                    "statuses": row.statuses,
                    "metrics": {name: stat.as_dict() for name, stat in row.metrics.items()},
                    "delta_m": row.delta_m.as_dict() if row.delta_m else None,
                    "score": row.score,
                    "paths": [str(r.path) for r in row.runs],
                }
                for row in self.rows
            ],
            "problems": [{"path": str(r.path), "status": r.status, "reason": r.reason} for r in self.problems],
        }


def short_key(key: str) -> str:
    """``arch.name`` reads as ``arch``."""
    return key[: -len(".name")] if key.endswith(".name") else key


def text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _interpolation(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def config_differences(runs: Iterable[RunRecord]) -> dict[str, list[str]]:
    """Config keys whose values differ between runs, each with its sorted distinct values.

    An option of a group choice that takes one value per choice (``balancer.gamma``: set by famo,
    absent from ew) is a constant of that choice, not a difference of its own.
    """
    with_config = [r for r in runs if r.config]
    keys = sorted({k for r in with_config for k in r.config})
    differences = {}
    for key in keys:
        present = [r.config[key] for r in with_config if key in r.config]
        if all(_interpolation(v) for v in present):
            continue  # e.g. balancer.weights: ${tasks.weights}; the key it points to is compared itself
        values = {text(r.config.get(key)) for r in with_config}
        if len(values) > 1 and not _constant_of_choice(key, with_config):
            differences[key] = sorted(values)
    return differences


def _constant_of_choice(key: str, runs: Sequence[RunRecord]) -> bool:
    """``key`` is an option of a group (``balancer.gamma``) whose value is fixed by the group's choice."""
    group, _, option = key.partition(".")
    choice = f"{group}.name"
    if not option or key == choice or any(choice not in r.config for r in runs):
        return False
    values: dict[str, set[str]] = {}
    for run in runs:
        values.setdefault(text(run.config[choice]), set()).add(text(run.config.get(key)))
    return len(values) > 1 and all(len(v) == 1 for v in values.values())


def mixed_keys(rows: Sequence[Row], label_keys: Sequence[str]) -> dict[str, list[str]]:
    """Keys that change results (not the seed) and differ between the runs of one row: the row
    averages them. Each with its distinct values over those rows."""
    mixed: dict[str, set[str]] = {}
    for row in rows:
        for key, values in config_differences(row.runs).items():
            if key in POOLED_BY_DEFAULT or key in label_keys or short_key(key) in label_keys:
                continue
            if affects_results(key):
                mixed.setdefault(key, set()).update(values)
    return {k: sorted(v) for k, v in sorted(mixed.items())}


def matches(run: RunRecord, filters: dict[str, str]) -> bool:
    return all(text(run.value(key)) == want for key, want in filters.items())


def compare(
    runs: Sequence[RunRecord],
    by: Sequence[str] | None = None,
    filters: dict[str, str] | None = None,
    all_metrics: bool = False,
    sort: str | None = None,
    rank_by: str | None = None,
) -> Comparison:
    """Group ``runs`` into rows, pool their results and rank them (``rank_by``: ``delta_m`` or
    ``score``; default Δm when every row has one, else the score)."""
    runs = [r for r in runs if matches(r, filters or {})]
    differences = config_differences(runs)
    if by:
        label_keys = list(by)
    else:
        label_keys = [k for k in differences if k not in POOLED_BY_DEFAULT]
    pooled = [k for k in differences if k not in label_keys and short_key(k) not in label_keys]
    groups: dict[tuple[str, ...], list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(tuple(text(run.value(k)) for k in label_keys), []).append(run)
    rows = [Row(label=dict(zip(label_keys, key)), runs=members) for key, members in groups.items()]
    columns = _columns(rows, all_metrics)
    for row in rows:
        _pool(row, columns)
    ranked_by = _rank(rows, columns, rank_by)
    _mark_pareto(rows, columns)
    rows = sort_rows(rows, columns, sort)
    problems = [r for r in runs if r.status != "completed"]
    mixed = mixed_keys(rows, label_keys)
    return Comparison(rows, label_keys, differences, pooled, columns, ranked_by, problems, mixed)


def _columns(rows: list[Row], all_metrics: bool) -> list[Column]:
    """Each task's primary metric (and, with ``all_metrics``, its other metrics), tasks in order of appearance."""
    found: dict[str, Column] = {}
    for row in rows:
        for run in row.completed:
            for task, values in run.metrics.items():
                for metric in values:
                    primary = run.primary.get(task) == metric
                    if primary or all_metrics:
                        higher = run.directions.get(task, {}).get(metric, True)
                        found.setdefault(f"{task}/{metric}", Column(task, metric, higher, primary))
    tasks = list(dict.fromkeys(c.task for c in found.values()))
    return sorted(found.values(), key=lambda c: (tasks.index(c.task), not c.primary))


def _pool(row: Row, columns: list[Column]) -> None:
    done = row.completed
    for column in columns:
        stat = Stat.of(
            [r.metrics[column.task][column.metric] for r in done if column.metric in r.metrics.get(column.task, {})]
        )
        if stat is not None:
            row.metrics[column.name] = stat
    row.delta_m = Stat.of([r.delta_m for r in done if r.delta_m is not None])


def _primary_columns(row: Row, columns: list[Column]) -> list[Column]:
    return [c for c in columns if c.primary and c.name in row.metrics]


RANK_RULES = ("delta_m", "score")


def _rank(rows: list[Row], columns: list[Column], rank_by: str | None = None) -> str:
    with_results = [r for r in rows if r.metrics]
    primary = [c for c in columns if c.primary]
    means = {}
    for column in primary:
        values = [r.metrics[column.name].mean for r in with_results if column.name in r.metrics]
        if values:
            means[column.name] = statistics.fmean(values)
    for row in with_results:
        row.score = defined_mean(
            signed_relative_change(row.metrics[c.name].mean, means[c.name], c.higher_is_better)
            for c in _primary_columns(row, columns)
        )
    if rank_by is None:
        use_delta = bool(with_results) and all(r.delta_m is not None for r in with_results)
    else:
        use_delta = rank_by == "delta_m"
    ranked_by = "delta_m" if use_delta else "score"

    def merit(row: Row) -> float:
        value = (row.delta_m.mean if row.delta_m else None) if use_delta else row.score
        return value if value is not None else -math.inf

    for position, row in enumerate(sorted(with_results, key=merit, reverse=True), start=1):
        row.rank = position
    return ranked_by


def dominates(a: Row, b: Row, columns: list[Column]) -> bool:
    """``a`` is at least as good as ``b`` on every primary metric and better on one."""
    better = False
    for column in columns:
        sign = 1.0 if column.higher_is_better else -1.0
        va, vb = sign * a.metrics[column.name].mean, sign * b.metrics[column.name].mean
        if va < vb:
            return False
        better = better or va > vb
    return better


def _mark_pareto(rows: list[Row], columns: list[Column]) -> None:
    """The non-dominated rows among those that report the same primary metrics."""
    families: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        names = tuple(c.name for c in _primary_columns(row, columns))
        if names:
            families.setdefault(names, []).append(row)
    for names, members in families.items():
        shared = [c for c in columns if c.name in names]
        for row in members:
            row.pareto = not any(dominates(other, row, shared) for other in members if other is not row)


def sort_rows(rows: list[Row], columns: list[Column], key: str | None) -> list[Row]:
    """Rank order by default; ``key`` sorts best-first by a metric column, a task (its primary
    metric), ``delta_m`` or ``score``, or ascending by a label key; a leading ``-`` reverses."""
    reverse = bool(key) and key.startswith("-")
    key = key.lstrip("-") if key else None
    unranked = math.inf

    if not key or key == "rank":
        ordered = sorted(rows, key=lambda r: (r.rank if r.rank is not None else unranked, r.title()))
    elif key in ("delta_m", "score"):

        def merit(r: Row) -> float:
            value = (r.delta_m.mean if r.delta_m else None) if key == "delta_m" else r.score
            return -value if value is not None else unranked

        ordered = sorted(rows, key=merit)
    else:
        column = next((c for c in columns if c.name == key), None) or next(
            (c for c in columns if c.task == key and c.primary), None
        )
        if column is not None:
            sign = -1.0 if column.higher_is_better else 1.0
            ordered = sorted(
                rows, key=lambda r: sign * r.metrics[column.name].mean if column.name in r.metrics else unranked
            )
        else:
            ordered = sorted(rows, key=lambda r: text(r.label.get(key, r.runs[0].value(key))))
    return list(reversed(ordered)) if reverse else ordered

"""The negative-transfer report as typed records: what ``transfer.json`` holds, field by field.

:mod:`mtlrun.report.negative_transfer` builds a :class:`TransferReport` and renders it (report.md,
the terminal table); the run folder writes it with :meth:`TransferReport.to_dict` (the fields in
their declared order are the file's keys) and reads it back with :meth:`TransferReport.from_dict`,
which is tolerant: a report written by an older version, with fields it did not have yet, reads
with their defaults, and non-finite numbers written as ``"nan"`` read back as floats.

Definitions (DESIGN.md): per task, Δ_t is the mean over its metrics of the signed relative change
of the multi-task value against the single-task baseline, in percent (positive: sharing helped);
``delta_m`` averages Δ_t over tasks, ``delta_m_drop`` is the drop form over all metrics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mtlrun.results.values import number

#: the verdicts of a task (``untested`` is followed by the seed count: ``untested (1 seed)``)
NEGATIVE = "negative transfer"
POSITIVE = "positive transfer"
NO_DIFFERENCE = "no significant difference"
UNTESTED = "untested"


@dataclass
class MetricTransfer:
    """One metric of one task: the multi-task and single-task means (and spreads) over the pooled seeds."""

    mtl: float | None = None
    mtl_std: float | None = None
    stl: float | None = None
    stl_std: float | None = None
    higher_is_better: bool = True
    #: signed relative change of ``mtl`` against ``stl`` in percent (positive: better)
    delta: float | None = None


@dataclass
class TaskTransfer:
    """One task's Δ_t, its 95% interval, the test's p-values and the verdict."""

    delta: float | None = None
    ci95: list[float] | None = None
    verdict: str = ""
    p_value: float | None = None
    p_adjusted: float | None = None
    n_mtl: int = 0
    n_stl: int = 0
    metrics: dict[str, MetricTransfer] = field(default_factory=dict)
    #: metrics left out of Δ_t because their baseline value is 0 (a relative change is undefined)
    excluded_metrics: list[str] = field(default_factory=list)

    @property
    def negative(self) -> bool:
        """A significant loss from sharing (``negative transfer``)."""
        return self.verdict == NEGATIVE

    @property
    def positive(self) -> bool:
        return self.verdict == POSITIVE

    @property
    def tested(self) -> bool:
        """Whether enough seeds were pooled for a test (else the verdict reads ``untested (n seeds)``)."""
        return not self.verdict.startswith(UNTESTED)


@dataclass
class TransferReport:
    """A run's negative-transfer report (``transfer.json``)."""

    run: dict[str, Any] = field(default_factory=dict)
    selection: str = ""
    test: str = ""
    ci_method: str = ""
    alpha: float = 0.05
    correction: str = "holm"
    min_seeds: int = 3
    seeds: list[Any] = field(default_factory=list)
    pool: dict[str, Any] = field(default_factory=dict)
    #: each pooled run: its folder (relative), seed, baseline keys and own Δm
    pooled_runs: list[dict[str, Any]] = field(default_factory=list)
    baseline_cache: str = ""
    tasks: dict[str, TaskTransfer] = field(default_factory=dict)
    missing_baselines: list[str] = field(default_factory=list)
    delta_m: float | None = None
    delta_m_drop: float | None = None
    #: this run's own seed and its Δm against its own-seed baselines
    own: dict[str, Any] | None = None
    complete: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    how_to_get_verdicts: str | None = None
    grouping: dict[str, Any] | None = None
    #: what to try against a significant negative transfer: status, evidence, ranked candidates with
    #: their commands, what was ruled out and why (``mtlrun.report.advice``)
    what_to_try: dict[str, Any] | None = None
    plots: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def negative_tasks(self) -> list[str]:
        """The tasks with a significant negative transfer."""
        return [t for t, v in self.tasks.items() if v.negative]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransferReport:
        """The report ``data`` (``transfer.json``'s object) holds; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("delta_m", "delta_m_drop", "alpha"):
            if key in values:
                values[key] = number(values[key])
        for key in ("seeds", "missing_baselines", "plots", "pooled_runs"):
            if key in values and not isinstance(values[key], list):
                values[key] = []
        tasks = values.get("tasks")
        values["tasks"] = {
            str(t): _task(entry)
            for t, entry in (tasks if isinstance(tasks, dict) else {}).items()
            if isinstance(entry, dict)
        }
        return cls(**values)

    @property
    def own_delta_m(self) -> float | None:
        """The run's own Δm (its seed against its own-seed baselines), not the pooled Δm, so that
        rows pooling several seeds show the seed-to-seed spread. A report that pooled no other seed
        (or was written before ``own`` existed and pooled one run) has only the one value."""
        if isinstance(self.own, dict):
            found = number(self.own.get("delta_m"))
        else:
            found = self.delta_m if len(self.seeds) <= 1 else None
        return found if found is not None and math.isfinite(found) else None

    def baseline_metrics(self) -> dict[str, dict[str, float]]:
        """``{task: {metric: STL mean}}`` (the single-task point of a trade-off plot)."""
        found: dict[str, dict[str, float]] = {}
        for task, entry in self.tasks.items():
            for metric, values in entry.metrics.items():
                if values.stl is not None and math.isfinite(values.stl):
                    found.setdefault(task, {})[metric] = values.stl
        return found


def _task(entry: dict[str, Any]) -> TaskTransfer:
    known = {f.name for f in fields(TaskTransfer)}
    values = {k: v for k, v in entry.items() if k in known}
    for key in ("delta", "p_value", "p_adjusted"):
        if key in values:
            values[key] = number(values[key])
    metrics = values.get("metrics")
    values["metrics"] = {
        str(m): _metric(v) for m, v in (metrics.items() if isinstance(metrics, dict) else ()) if isinstance(v, dict)
    }
    return TaskTransfer(**values)


def _metric(entry: dict[str, Any]) -> MetricTransfer:
    known = {f.name for f in fields(MetricTransfer)}
    values: dict[str, Any] = {k: number(v) for k, v in entry.items() if k in known and k != "higher_is_better"}
    return MetricTransfer(**values, higher_is_better=bool(entry.get("higher_is_better", True)))

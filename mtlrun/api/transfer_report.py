"""``transfer.json`` as typed values: the negative-transfer report of a run (see ``mtlrun.report``).

The report is written by :func:`mtlrun.report.negative_transfer.build_report` and read here through
:meth:`mtlrun.runfolder.RunFolder.read_transfer` (JSON only). Reading is tolerant, as the summary's
reader is: a missing entry is None (an older or hand-edited file), a number written as ``"nan"`` is
a float again (the run folder's NaN rule, :func:`mtlrun.runfolder.number`); :attr:`TransferReport.raw`
keeps the whole file for the entries not typed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtlrun.report.folders import own_delta_m
from mtlrun.report.transfer import NEGATIVE, POSITIVE, UNTESTED
from mtlrun.runfolder import number


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [str(x) for x in value] if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    x = number(value)
    return int(x) if x is not None and x.is_integer() else None


@dataclass(frozen=True)
class MetricTransfer:
    """One metric of a task: the multi-task (``mtl``) and single-task (``stl``) means over the pooled
    seeds, their standard deviations, and the relative change ``delta`` in percent (positive: sharing helped)."""

    mtl: float | None
    stl: float | None
    delta: float | None
    higher_is_better: bool
    mtl_std: float | None = None
    stl_std: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricTransfer:
        return cls(
            mtl=number(data.get("mtl")),
            stl=number(data.get("stl")),
            delta=number(data.get("delta")),
            higher_is_better=bool(data.get("higher_is_better", True)),
            mtl_std=number(data.get("mtl_std")),
            stl_std=number(data.get("stl_std")),
        )


@dataclass(frozen=True)
class TaskTransfer:
    """One task's Δ_t (percent, positive: sharing helped), its 95% interval, the verdict and the test behind it."""

    task: str
    delta: float | None
    verdict: str
    ci95: tuple[float, float] | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n_mtl: int | None = None
    n_stl: int | None = None
    metrics: dict[str, MetricTransfer] = field(default_factory=dict)
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

    @classmethod
    def from_dict(cls, task: str, data: Mapping[str, Any]) -> TaskTransfer:
        ci = data.get("ci95")
        low, high = (number(ci[0]), number(ci[1])) if isinstance(ci, list) and len(ci) == 2 else (None, None)
        return cls(
            task=task,
            delta=number(data.get("delta")),
            verdict=str(data.get("verdict") or ""),
            ci95=(low, high) if low is not None and high is not None else None,
            p_value=number(data.get("p_value")),
            p_adjusted=number(data.get("p_adjusted")),
            n_mtl=_int(data.get("n_mtl")),
            n_stl=_int(data.get("n_stl")),
            metrics={
                str(m): MetricTransfer.from_dict(v)
                for m, v in _dict(data.get("metrics")).items()
                if isinstance(v, dict)
            },
            excluded_metrics=_strings(data.get("excluded_metrics")),
        )


@dataclass(frozen=True)
class TransferReport:
    """A run's negative-transfer report: per-task verdicts and Δm against the single-task baselines.

    ``delta_m`` (improvement, higher is better) and ``delta_m_drop`` (the papers' drop, lower is
    better) are over every seed the report pooled; ``own_delta_m`` is this run's seed alone.
    """

    tasks: dict[str, TaskTransfer]
    delta_m: float | None
    delta_m_drop: float | None
    own_delta_m: float | None
    seeds: list[Any]
    complete: bool
    missing_baselines: list[str]
    alpha: float | None
    correction: str | None
    min_seeds: int | None
    how_to_get_verdicts: str | None
    grouping: dict[str, Any] | None
    cost: dict[str, Any]
    plots: list[str]
    raw: dict[str, Any] = field(repr=False)

    @property
    def negative_tasks(self) -> list[str]:
        """The tasks with a significant negative transfer."""
        return [t for t, v in self.tasks.items() if v.negative]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransferReport:
        raw = dict(data)
        how = raw.get("how_to_get_verdicts")
        grouping = raw.get("grouping")
        correction = raw.get("correction")
        own = number(own_delta_m(raw))
        return cls(
            tasks={
                str(t): TaskTransfer.from_dict(str(t), v)
                for t, v in _dict(raw.get("tasks")).items()
                if isinstance(v, dict)
            },
            delta_m=number(raw.get("delta_m")),
            delta_m_drop=number(raw.get("delta_m_drop")),
            own_delta_m=own,
            seeds=list(raw["seeds"]) if isinstance(raw.get("seeds"), list) else [],
            complete=bool(raw.get("complete", False)),
            missing_baselines=_strings(raw.get("missing_baselines")),
            alpha=number(raw.get("alpha")),
            correction=str(correction) if correction is not None else None,
            min_seeds=_int(raw.get("min_seeds")),
            how_to_get_verdicts=str(how) if how else None,
            grouping=grouping if isinstance(grouping, dict) else None,
            cost=_dict(raw.get("cost")),
            plots=_strings(raw.get("plots")),
            raw=raw,
        )

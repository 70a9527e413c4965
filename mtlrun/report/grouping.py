"""The suggested task grouping of a report: the best split by affinity, how clearly it wins, and how to train it.

The split is chosen on the affinity matrix averaged over the pooled seeds. Its margin over the
runner-up split is compared with the seed-to-seed spread of that margin (the sample standard
deviation of the margin measured on each seed's own matrix): a split whose margin does not exceed
the spread, or that rests on a single seed, is reported as "no stable grouping".
"""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from mtlrun.report.transfer import best_grouping, grouping_score
from mtlrun.results.run_folder import LaunchArguments

Affinity = dict[str, dict[str, float]]


def affinity_of(diagnostics: dict[str, Any] | None) -> tuple[list[str], Affinity] | None:
    """The task names and affinity matrix of a run's ``diagnostics.json`` (None when not measured)."""
    try:
        names, matrix = list((diagnostics or {})["tasks"]), (diagnostics or {})["affinity"]["matrix"]
    except (KeyError, TypeError):
        return None
    if not matrix or len(names) < 2:
        return None
    try:
        return names, {i: {j: float(matrix[a][b]) for b, j in enumerate(names)} for a, i in enumerate(names)}
    except (IndexError, TypeError, ValueError):
        return None


def mean_affinity(matrices: Sequence[Affinity]) -> Affinity:
    return {i: {j: statistics.fmean(m[i][j] for m in matrices) for j in row} for i, row in matrices[0].items()}


def suggest_grouping(
    names: list[str],
    matrices: Sequence[Affinity],
    groups: int,
    launch: LaunchArguments,
    uses: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The best split of ``names`` into ``groups`` groups, its margin, its stability and the commands."""
    if len(names) < 2 or not matrices:
        return None
    result = best_grouping(names, mean_affinity(matrices), groups)
    result["requested_groups"] = groups
    result["seeds"] = len(matrices)
    runner_up = result["runner_up"]
    spread = None
    if runner_up is not None and len(matrices) > 1:
        margins = [grouping_score(result["groups"], m) - grouping_score(runner_up, m) for m in matrices]
        spread = statistics.stdev(margins)
    result["spread"] = spread
    result["stable"] = bool(result["margin"] is not None and spread is not None and result["margin"] > spread)
    result["commands"] = training_commands(result["groups"], launch, uses) if len(result["groups"]) > 1 else []
    return result


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def without(overrides: Sequence[str], *keys: str) -> list[str]:
    """``overrides`` less those that set ``keys`` or anything below them (``arch`` drops ``arch.x=1``)."""
    return [o for o in overrides if not any(_key(o) == k or _key(o).startswith(f"{k}.") for k in keys)]


def command(launch: LaunchArguments, *parts: str, drop: Sequence[str] = ()) -> str:
    """``mtlrun`` with the run's flags, its overrides less those setting ``drop``, then ``parts``
    (``-m`` goes first), each quoted for a POSIX shell: it runs as printed."""
    flags = ["-m"] if "-m" in parts else []
    rest = [p for p in parts if p != "-m"]
    words = [*flags, *launch.flags, *without(launch.overrides, *drop), *rest]
    return " ".join(["mtlrun", *(shlex.quote(w) for w in words)])


def balancer_fit(
    uses: Mapping[str, Any] | None, arch: str, groups: Sequence[Sequence[str]] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(parts, drop)`` that keep the run's balancer valid on a suggested architecture, so the
    command trains as printed, not only composes. ``uses`` is the run's ``summary.json``
    ``balancer_uses`` (empty for runs recorded before it: nothing is changed then).

    With nothing shared (``single_task``, or ``branched`` whose groups are single tasks split at the
    input) a balancer that combines task gradients has nothing to combine: ``balancer=ew`` instead.
    Otherwise a balancer with ``rep_grad`` needs one shared representation, which only ``hps`` has:
    ``balancer.rep_grad=false`` elsewhere.
    """
    uses = uses or {}
    shares = arch != "single_task" and (groups is None or any(len(g) > 1 for g in groups))
    if not shares and uses.get("task_gradients") is True:
        return ("balancer=ew",), ("balancer",)
    if uses.get("representation") is True and arch != "hps":
        return ("balancer.rep_grad=false",), ("balancer.rep_grad",)
    return (), ()


def training_commands(
    split: Sequence[Sequence[str]], launch: LaunchArguments, uses: Mapping[str, Any] | None = None
) -> list[dict[str, str]]:
    """One branched network whose groups split at the input, and one run per group (a sweep)."""
    branch_at = "{" + ",".join(f"{'+'.join(g)}:0" for g in split) + "}"
    per_group = ",".join("[" + ",".join(g) + "]" for g in split)
    off, off_keys = balancer_fit(uses, "branched", split)
    return [
        {
            "what": "one branched network: the tasks of a group share the encoder, the groups share nothing",
            "command": command(
                launch, "arch=branched", f"arch.branch_at={branch_at}", *off, drop=("arch", "seed", *off_keys)
            ),
        },
        {
            "what": "one multi-task run per group",
            "command": command(launch, "-m", f"tasks.names={per_group}", drop=("tasks.names", "seed")),
        },
    ]

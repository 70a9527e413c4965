"""What to try when a task loses from sharing: ranked changes, each with its evidence and its command.

Only a significant negative verdict (:data:`~mtlrun.results.transfer_report.NEGATIVE`) starts the
advice; without one the report says there is nothing to fix, and without verdicts (too few seeds)
it ranks nothing and says why. The candidates, each kept only where this run's measurements back it:

- **grouping**: the task split the affinity suggests (TAG, Fifty et al., NeurIPS 2021), when its best
  split has more than one group; trained as one branched network whose groups share nothing.
- **balancer**: a conflict-aware balancer when gradient conflict is high for a negative task, i.e.
  for some pair of it and another task the mean cosine of their gradients on the shared parameters
  is below :data:`CONFLICT_COSINE` (0: opposed on average) or the fraction of sampled steps where
  they conflict (cosine < 0, the definition of Yu et al., NeurIPS 2020) is at least
  :data:`CONFLICT_FRACTION` (0.5: conflict on most steps). PCGrad is the first choice: its
  projection removes exactly the measured quantity (the conflicting component of each task
  gradient) and has no option to tune; CAGrad (Liu et al., NeurIPS 2021) and Nash-MTL (Navon et al.,
  ICML 2022) follow when the run already uses the one before.
- **architecture**: more task-specific capacity than the run's: from hard sharing (``hps``) to
  MTAN's per-task attention (Liu et al., CVPR 2019) on image encoders, or CGC's task-specific
  experts (Tang et al., RecSys 2020, proposed against negative transfer) on vector encoders;
  ``mmoe``/``dselect_k`` to ``cgc`` (task-specific experts), ``cgc`` to ``ple`` (more levels).
  When every task of an ``hps`` run on an image encoder loses, the shared trunk itself is the
  bottleneck, which MTAN keeps (its attention reads one shared backbone): cross-stitch (Misra et al.,
  CVPR 2016) gives every task an encoder column of its own, mixed after each stage.
- **alone**: the fallback, always last: the negative task(s) on their own encoder, the others shared.

Ranking rule (deterministic, from the evidence): (1) a split whose margin over the runner-up exceeds
its seed-to-seed spread (a stable grouping: measured on the losses, the closest measurement to the
verdict); (2) the balancer, when conflict is high; (3) the architecture; (4) a split that is not
stable; (5) training the negative task(s) alone. Ties cannot occur: each kind appears at most once,
and a split that is the fallback's own (the negative tasks alone, the others together) is listed once,
at the split's rank.
Every command sweeps the pooled seeds (``-m seed=...``), so its report has verdicts to compare, and
reuses the cached baselines; one that changes the architecture keeps the run's balancer valid there
(:func:`~mtlrun.report.grouping.balancer_fit`: ``balancer=ew`` where nothing is shared any more,
``balancer.rep_grad=false`` where there is no single shared representation), so it trains as printed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from mtlrun.report.grouping import Affinity, balancer_fit, command, mean_affinity
from mtlrun.results.run_folder import LaunchArguments
from mtlrun.results.transfer_report import TransferReport

#: a pair's mean gradient cosine below this is high conflict (opposed on average)
CONFLICT_COSINE = 0.0
#: a pair conflicting (cosine < 0) on at least this fraction of sampled steps is high conflict
CONFLICT_FRACTION = 0.5
#: conflict-aware balancers in the order they are suggested
CONFLICT_BALANCERS = ("pcgrad", "cagrad", "nash_mtl")
BALANCER_PAPERS = {
    "pcgrad": "PCGrad (Yu et al., NeurIPS 2020) projects each task gradient off those it conflicts with",
    "cagrad": "CAGrad (Liu et al., NeurIPS 2021) maximises the worst task's improvement near the mean gradient",
    "nash_mtl": "Nash-MTL (Navon et al., ICML 2022) weighs the task gradients by a Nash bargaining solution",
}
#: encoders whose stages are feature maps (MTAN's attention per stage costs little there)
IMAGE_ENCODERS = ("cnn", "lenet", "resnet18", "segnet", "resnet_dilated")
#: encoders of feature vectors (a copy per expert is cheap)
VECTOR_ENCODERS = ("mlp", "tabular", "tabular_embedding")
ARCH_PAPERS = {
    "mtan": "MTAN (Liu et al., CVPR 2019) gives every task its own attention over each shared stage",
    "cross_stitch": "Cross-stitch (Misra et al., CVPR 2016) gives every task an encoder column of its own, "
    "mixed by learned weights after each stage",
    "cgc": "CGC (Tang et al., RecSys 2020) gives every task its own experts beside the shared ones",
    "ple": "PLE (Tang et al., RecSys 2020) stacks CGC levels, separating task-specific and shared experts",
}
RANKING_RULE = (
    "ranked by this run's evidence: (1) a stable task split by affinity, (2) a conflict-aware balancer when "
    f"gradient conflict is high (a pair with the negative task has mean cosine < {CONFLICT_COSINE:g} or "
    f"conflicts on ≥ {CONFLICT_FRACTION:.0%} of sampled steps), (3) an architecture with more task-specific "
    "capacity, (4) a task split that is not stable, (5) the negative task(s) alone"
)


def pair_conflict(diagnostics: Mapping[str, Any] | None, tasks: Sequence[str]) -> dict[tuple[str, str], Any] | None:
    """``{(a, b): (mean cosine, fraction of steps with cosine < 0)}`` of a run's ``diagnostics.json``."""
    try:
        if list((diagnostics or {})["tasks"]) != list(tasks):
            return None
        pairs = (diagnostics or {})["cosine"]["pairs"]
        return {
            (a, b): (float(pairs[f"{a}|{b}"]["mean"]), float(pairs[f"{a}|{b}"]["frac_negative"]))
            for i, a in enumerate(tasks)
            for b in tasks[i + 1 :]
        }
    except (KeyError, TypeError, ValueError):
        return None


def pooled_conflict(runs: Sequence[Mapping[tuple[str, str], Any]]) -> dict[tuple[str, str], dict[str, float]] | None:
    """Each pair's mean cosine and conflict fraction averaged over the pooled runs (one weight per run)."""
    if not runs:
        return None
    return {
        pair: {
            "mean": statistics.fmean(r[pair][0] for r in runs),
            "frac_negative": statistics.fmean(r[pair][1] for r in runs),
        }
        for pair in runs[0]
    }


def _between(conflict: Mapping[tuple[str, str], Mapping[str, float]], a: str, b: str) -> Mapping[str, float]:
    return conflict[(a, b)] if (a, b) in conflict else conflict[(b, a)]


def task_conflict(
    conflict: Mapping[tuple[str, str], Mapping[str, float]], task: str, tasks: Sequence[str]
) -> dict[str, Any]:
    """The gradient conflict of ``task`` with each other task, of the pairs without it, and whether it is high."""
    others = [t for t in tasks if t != task]
    with_task = {t: dict(_between(conflict, task, t)) for t in others}
    rest = [v for (a, b), v in conflict.items() if task not in (a, b)]
    high = [t for t, v in with_task.items() if v["mean"] < CONFLICT_COSINE or v["frac_negative"] >= CONFLICT_FRACTION]
    return {
        "pairs": with_task,
        "pairs_without": {
            "mean": statistics.fmean(v["mean"] for v in rest),
            "frac_negative": statistics.fmean(v["frac_negative"] for v in rest),
        }
        if rest
        else None,
        "high_with": high,
        "high": bool(high),
    }


def seeds_part(report: TransferReport) -> list[str]:
    """``seed=0,1,2``: the pooled seeds, so a suggestion's own report has verdicts against the same baselines."""
    seeds = sorted({s for s in report.seeds if isinstance(s, int) and not isinstance(s, bool)})
    return ["-m", "seed=" + ",".join(map(str, seeds))] if len(seeds) > 1 else []


def branched(groups: Sequence[Sequence[str]]) -> str:
    """``arch.branch_at`` that gives each group its own encoder from the input on."""
    return "arch.branch_at={" + ",".join(f"{'+'.join(g)}:0" for g in groups) + "}"


def _fmt_pair(v: Mapping[str, float]) -> str:
    return f"mean cosine {v['mean']:+.3f}, conflicting on {v['frac_negative']:.0%} of sampled steps"


def what_to_try(
    report: TransferReport,
    launch: LaunchArguments,
    conflicts: Sequence[Mapping[tuple[str, str], Any]] = (),
    affinities: Sequence[Affinity] = (),
    diagnostics_reason: str | None = None,
) -> dict[str, Any]:
    """The ``what_to_try`` entry of ``transfer.json``: status, evidence, ranked candidates, what was ruled out.

    ``conflicts`` and ``affinities`` are the pooled runs' measurements (:func:`pair_conflict`,
    :func:`mtlrun.report.grouping.affinity_of`); ``report.grouping`` must already be set.
    """
    tasks = list(report.run.get("tasks") or [])
    negative = report.negative_tasks
    out: dict[str, Any] = {
        "status": "",
        "summary": "",
        "negative_tasks": negative,
        "rule": RANKING_RULE,
        "thresholds": {"mean_cosine_below": CONFLICT_COSINE, "conflict_fraction_at_least": CONFLICT_FRACTION},
        "evidence": {},
        "candidates": [],
        "not_suggested": [],
    }
    unjudged = report.missing_baselines
    tested = [t for t, v in report.tasks.items() if v.tested]
    if not negative:
        if not tested:
            seeds = len(report.seeds)
            out["status"] = "untested"
            out["summary"] = (
                f"No task has a verdict yet ({seeds} seed(s) pooled; a verdict needs {report.min_seeds} on each "
                "side), so nothing is ranked: a change chosen on one seed's numbers would follow noise."
            )
            if report.pool.get("sweep_job"):
                out["summary"] += " This report is rebuilt with the sweep's other seeds when the sweep ends."
        else:
            out["status"] = "none"
            verdicts = ", ".join(f"{t} {report.tasks[t].verdict}" for t in tested)
            out["summary"] = f"No task shows significant negative transfer ({verdicts}): nothing to fix."
        if unjudged:
            out["summary"] += f" Not judged (no single-task baseline): {', '.join(unjudged)}."
        return out
    out["status"] = "negative"
    arch, balancer = str(report.run.get("arch") or ""), str(report.run.get("balancer") or "")
    encoder = str((report.config.get("encoder") or {}).get("name") or report.run.get("encoder") or "")
    seeds = seeds_part(report)
    deltas = ", ".join(
        f"{t} Δ_t {report.tasks[t].delta:+.2f} % (p {report.tasks[t].p_adjusted:.4f})"
        if report.tasks[t].delta is not None and report.tasks[t].p_adjusted is not None
        else t
        for t in negative
    )
    out["summary"] = f"Negative transfer: {deltas}. What to try, {RANKING_RULE}."
    if unjudged:
        out["summary"] += f" Not judged (no single-task baseline): {', '.join(unjudged)}."
    evidence: dict[str, Any] = {"arch": arch, "balancer": balancer, "encoder": encoder, "seeds": report.seeds}
    conflict = pooled_conflict([c for c in conflicts if c is not None])
    if conflict is not None:
        evidence["conflict"] = {t: task_conflict(conflict, t, tasks) for t in negative}
        evidence["conflict_runs"] = len([c for c in conflicts if c is not None])
    else:
        evidence["conflict"] = None
        evidence["conflict_reason"] = diagnostics_reason or "no gradient cosines in diagnostics.json"
    matrix = mean_affinity(affinities) if affinities else None
    if matrix is not None:
        evidence["affinity_into"] = {t: {j: matrix[j][t] for j in tasks if j != t} for t in negative}
    out["evidence"] = evidence
    found: list[tuple[int, dict[str, Any]]] = []

    def fit(groups: Any, target: str = "branched") -> tuple[str, ...]:  # the balancer kept valid there
        return balancer_fit(report.run.get("balancer_uses"), target, groups)[0]

    def dropped(groups: Any, target: str = "branched") -> tuple[str, ...]:
        return ("arch", "seed", *balancer_fit(report.run.get("balancer_uses"), target, groups)[1])

    ruled_out: list[dict[str, str]] = out["not_suggested"]

    # grouping
    grouping = report.grouping
    if grouping and len(grouping["groups"]) > 1:
        split = grouping["groups"]
        shown = " | ".join("{" + ", ".join(g) + "}" for g in split)
        into = "".join(
            f"; affinity into {t} " + ", ".join(f"from {j} {z:+.4f}" for j, z in row.items())
            for t, row in (evidence.get("affinity_into") or {}).items()
        )
        spread = "unknown (one seed)" if grouping["spread"] is None else f"{grouping['spread']:.4f}"
        stable = "stable" if grouping["stable"] else "not stable"
        found.append(
            (
                1 if grouping["stable"] else 4,
                {
                    "kind": "grouping",
                    "change": f"arch=branched, groups {shown}",
                    "reason": "tasks whose steps help each other share an encoder, the groups share nothing "
                    "(TAG, Fifty et al., NeurIPS 2021)",
                    "evidence": f"best split by affinity {shown}, margin {grouping['margin']:.4f} over the "
                    f"runner-up, seed-to-seed spread {spread}: {stable}{into}",
                    "command": command(
                        launch, *seeds, "arch=branched", branched(split), *fit(split), drop=dropped(split)
                    ),
                    "split": {frozenset(g) for g in split},
                },
            )
        )
    elif grouping:
        ruled_out.append(
            {
                "kind": "grouping",
                "why": "the affinity's best split keeps all tasks together "
                f"(score {grouping['score']:.4f}); the negative verdict contradicts it",
            }
        )
    else:
        ruled_out.append({"kind": "grouping", "why": "no affinity measured (diagnostics off or no shared parameters)"})

    # balancer
    if conflict is None:
        ruled_out.append({"kind": "balancer", "why": f"gradient conflict not measured: {evidence['conflict_reason']}"})
    else:
        per_task = evidence["conflict"]
        conflicted = [t for t in negative if per_task[t]["high"]]
        parts = []
        for t in negative:
            worst = min(per_task[t]["pairs"].items(), key=lambda kv: kv[1]["mean"])
            text = f"{t} with {worst[0]}: {_fmt_pair(worst[1])}"
            if per_task[t]["pairs_without"] is not None:
                text += f" (pairs without {t}: {_fmt_pair(per_task[t]['pairs_without'])})"
            parts.append(text)
        measured = "; ".join(parts) + f"; over {evidence['conflict_runs']} run(s)"
        choice = CONFLICT_BALANCERS[0]
        if balancer in CONFLICT_BALANCERS:  # the next one: this one leaves the conflict high
            choice = CONFLICT_BALANCERS[(CONFLICT_BALANCERS.index(balancer) + 1) % len(CONFLICT_BALANCERS)]
        if conflicted:
            already = f"; conflict stays high under balancer={balancer}" if balancer in CONFLICT_BALANCERS else ""
            found.append(
                (
                    2,
                    {
                        "kind": "balancer",
                        "change": f"balancer={choice}",
                        "reason": BALANCER_PAPERS[choice]
                        + " (one backward pass per task per step; tasks.weights, if set, is dropped)",
                        "evidence": f"high gradient conflict: {measured}{already}",
                        "command": command(
                            launch, *seeds, f"balancer={choice}", drop=("balancer", "tasks.weights", "seed")
                        ),
                    },
                )
            )
        else:
            ruled_out.append(
                {
                    "kind": "balancer",
                    "why": f"gradient conflict is low (mean cosine ≥ {CONFLICT_COSINE:g} and conflict on fewer "
                    f"than {CONFLICT_FRACTION:.0%} of sampled steps for every pair with a negative task): {measured}",
                }
            )

    # architecture
    every_task_loses = set(negative) == set(tasks)
    target, why_not = next_architecture(arch, encoder, every_task_loses=every_task_loses)
    if target is not None:
        found.append(
            (
                3,
                {
                    "kind": "architecture",
                    "change": f"arch={target}",
                    "reason": ARCH_PAPERS[target],
                    "evidence": f"arch={arch}"
                    + (" shares every encoder parameter (hard sharing)" if arch == "hps" else "")
                    + f", encoder={encoder}"
                    + (
                        "; every task loses, so the shared trunk is the bottleneck (MTAN would keep it)"
                        if target == "cross_stitch"
                        else ""
                    ),
                    "command": command(
                        launch, *seeds, f"arch={target}", *fit(None, target), drop=dropped(None, target)
                    ),
                },
            )
        )
    else:
        ruled_out.append({"kind": "architecture", "why": why_not})

    # alone
    rest = [t for t in tasks if t not in negative]
    alone_groups = [[t] for t in negative]
    if rest:
        everyone = [rest, *alone_groups]
        alone = command(launch, *seeds, "arch=branched", branched(alone_groups), *fit(everyone), drop=dropped(everyone))
        keeps = f"{', '.join(rest)} {'keeps its' if len(rest) == 1 else 'keep one shared'} encoder"
    else:
        alone = command(
            launch, *seeds, "arch=single_task", *fit(None, "single_task"), drop=dropped(None, "single_task")
        )
        keeps = "every task has its own network"
    stl = "; ".join(
        f"{t}: single-task " + ", ".join(f"{m} {v.stl:.4f} vs {v.mtl:.4f}" for m, v in report.tasks[t].metrics.items())
        for t in negative
        if report.tasks[t].metrics
    )
    alone_split = {frozenset(g) for g in [rest, *alone_groups] if g}
    same = next((e for _, e in found if e.get("split") == alone_split), None)
    if same is not None:  # the suggested split is the fallback's own: one run, listed once
        same.setdefault("also", []).append("alone")
    found.append(
        (
            5 if same is None else 0,
            {
                "kind": "alone",
                "change": f"{', '.join(negative)} alone",
                "reason": "the single-task baseline is the fallback: "
                + (
                    f"{negative[0]} on its own encoder"
                    if len(negative) == 1
                    else f"each of {', '.join(negative)} on its own encoder"
                )
                + f", {keeps}",
                "evidence": f"single-task vs multi-task: {stl}" if stl else "the negative verdict",
                "command": alone,
            },
        )
    )
    ranked = [e for rank, e in sorted(found, key=lambda e: e[0]) if rank > 0]
    for entry in ranked:
        entry.pop("split", None)
    out["candidates"] = [{"rank": i + 1, **entry} for i, entry in enumerate(ranked)]
    return out


def next_architecture(arch: str, encoder: str, *, every_task_loses: bool = False) -> tuple[str | None, str]:
    """The architecture with more task-specific capacity than ``arch`` for ``encoder``, or None and why not.

    ``every_task_loses``: every task of the run has a negative verdict, so a shared backbone of any
    kind is suspect and an image encoder gets a column per task (cross-stitch) rather than MTAN.
    """
    from mtlrun.config.options import OPTIONS

    if arch == "hps":
        if encoder in IMAGE_ENCODERS:
            target = "cross_stitch" if every_task_loses else "mtan"
        elif encoder in VECTOR_ENCODERS:
            target = "cgc"
        else:
            return None, f"no architecture with task-specific capacity is known to suit encoder={encoder}"
    elif arch in ("mmoe", "dselect_k"):
        target = "cgc"
    elif arch == "cgc":
        target = "ple"
    else:
        return None, f"arch={arch} is not hard sharing: it already gives the tasks parameters of their own"
    if ("arch", target) not in OPTIONS:
        return None, f"arch={target} is not available"
    return target, ""


def markdown_lines(advice: Mapping[str, Any] | None, how_to_get_verdicts: str | None = None) -> list[str]:
    """The ``## What to try`` section of report.md."""
    if not advice:
        return ["Not computed (a report written by an older version)."]
    lines = [advice["summary"]]
    if advice["status"] == "untested" and how_to_get_verdicts:
        lines[0] += " The command under *How to get verdicts* above gets them."
    if advice["status"] != "negative":
        return lines
    lines.append("")
    for c in advice["candidates"]:
        also = f" (also the {', '.join(c['also'])} candidate)" if c.get("also") else ""
        lines += [
            f"{c['rank']}. **{c['change']}**{also}: {c['reason']}. Evidence: {c['evidence']}.",
            "",
            "   ```",
            f"   {c['command']}",
            "   ```",
            "",
        ]
    if advice["not_suggested"]:
        lines += ["Not suggested:", ""]
        lines += [f"- {n['kind']}: {n['why']}." for n in advice["not_suggested"]]
    while lines[-1] == "":
        lines.pop()
    return lines


def terminal_lines(advice: Mapping[str, Any] | None) -> list[str]:
    """The terminal's what-to-try block: one line per candidate, its command on the next line."""
    if not advice:
        return []
    if advice["status"] != "negative":
        return [f"what to try: {advice['summary']}"]
    negative = ", ".join(advice["negative_tasks"])
    lines = [f"what to try against the negative transfer of {negative}, ranked by this run's evidence (see report.md):"]
    for c in advice["candidates"]:
        lines += [f"  {c['rank']}. {c['change']}: {c['evidence']}", f"     {c['command']}"]
    return lines

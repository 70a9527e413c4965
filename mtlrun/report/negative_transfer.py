"""The negative-transfer report of a run folder: ``transfer.json``, ``report.md``, the verdict table.

Everything is read back from the folder (``.hydra/config.yaml``, ``summary.json``,
``diagnostics.json``) and the baseline cache, so the report can be rebuilt later, e.g. at the end
of a sweep once every seed has finished. Runs that share the configuration except the seed, in
the same sweep or under the same outputs root, are pooled: mean ± std over seeds and a one-sided
Welch test per task.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mtlrun.baseline_cache import BaselineCache, baseline_key, baseline_settings
from mtlrun.report.folders import find_run_folders
from mtlrun.report.markdown import md_table
from mtlrun.report.transfer import (
    NEGATIVE,
    POSITIVE,
    TaskVerdict,
    best_grouping,
    delta_m,
    delta_m_drop,
    judge_task,
)
from mtlrun.runfolder import PLOTS, RunFolder, Summary

#: config keys that do not change what a run learns (ignored when matching seeds)
_NOT_IDENTITY = ("seed", "report", "diagnostics", "logger")
_TRAINER_NOT_IDENTITY = ("device", "checkpoint_every")


def identity(config: dict[str, Any]) -> str:
    """The configuration without the seed and the settings that do not affect results."""
    kept = {k: v for k, v in config.items() if k not in _NOT_IDENTITY}
    kept["trainer"] = {k: v for k, v in (config.get("trainer") or {}).items() if k not in _TRAINER_NOT_IDENTITY}
    return json.dumps(kept, sort_keys=True, default=str)


def find_seed_runs(run_dir: Path, roots: Sequence[Path]) -> list[Path]:
    """Completed runs with this run's configuration except the seed (one folder per seed, newest)."""
    own = RunFolder(run_dir).read_config()
    if own is None:
        return [run_dir]
    target = identity(own)
    by_seed: dict[Any, Path] = {own.get("seed"): run_dir}
    for folder in find_run_folders(roots):
        if folder == run_dir.resolve():
            continue
        config, summary = RunFolder(folder).read_config(), RunFolder(folder).read_summary()
        if config is None or summary is None or not summary.completed:
            continue
        if identity(config) == target and config.get("seed") != own.get("seed"):
            previous = by_seed.get(config.get("seed"))
            if previous is None or folder.name > previous.name:
                by_seed[config.get("seed")] = folder
    return [by_seed[s] for s in sorted(by_seed, key=str)]


def baseline_keys_for(config: dict[str, Any], summary: Summary) -> dict[str, str]:
    return {
        task: baseline_key(
            baseline_settings(
                config["dataset"], task, summary.primary[task], summary.encoder, config["trainer"], config["seed"]
            )
        )
        for task in summary.run.tasks or []
    }


def build_report(
    run_dir: Path, cache: BaselineCache, roots: Sequence[Path], alpha: float = 0.05, groups: int = 2
) -> dict[str, Any] | None:
    """Compute the report of ``run_dir``; write transfer.json, report.md and the Δ chart.

    Returns the report, or None when the run is not complete.
    """
    folder = RunFolder(run_dir)
    summary, config = folder.read_summary(), folder.read_config()
    if summary is None or config is None or not summary.completed:
        return None
    tasks = summary.run.tasks or []
    directions = summary.directions
    pooled = find_seed_runs(run_dir, roots)
    mtl_runs: dict[str, list[dict[str, float]]] = {t: [] for t in tasks}
    stl_runs: dict[str, list[dict[str, float]]] = {t: [] for t in tasks}
    pooled_info = []
    for other in pooled:
        s, c = RunFolder(other).read_summary(), RunFolder(other).read_config()
        if s is None or c is None:
            continue
        keys = baseline_keys_for(c, s)
        entry = {"folder": str(other), "seed": c.get("seed"), "baselines": {}}
        for task in tasks:
            mtl_runs[task].append(s.results("best", "test")[task])
            record = cache.load(keys[task])
            entry["baselines"][task] = keys[task] if record is not None else None
            if record is not None:
                stl_runs[task].append(record["metrics"]["best"]["test"])
        pooled_info.append(entry)
    verdicts: dict[str, TaskVerdict] = {}
    for task in tasks:
        if stl_runs[task]:
            verdicts[task] = judge_task(task, mtl_runs[task], stl_runs[task], directions[task], alpha)
    have_all = len(verdicts) == len(tasks)
    mean = {t: {m: v["mtl"] for m, v in verdicts[t].metrics.items()} for t in verdicts}
    stl_mean = {t: {m: v["stl"] for m, v in verdicts[t].metrics.items()} for t in verdicts}
    dirs = {t: directions[t] for t in verdicts}
    report: dict[str, Any] = {
        "run": asdict(summary.run),
        "selection": "test metrics at the best-validation epoch",
        "alpha": alpha,
        "seeds": [p["seed"] for p in pooled_info],
        "pooled_runs": pooled_info,
        "baseline_cache": str(cache.root),
        "tasks": {
            t: {
                "delta": v.delta,
                "verdict": v.verdict,
                "p_value": v.p_value,
                "n_mtl": v.n_mtl,
                "n_stl": v.n_stl,
                "metrics": v.metrics,
                "excluded_metrics": v.excluded,
            }
            for t, v in verdicts.items()
        },
        "missing_baselines": [t for t in tasks if t not in verdicts],
        "delta_m": delta_m(mean, stl_mean, dirs) if verdicts else None,
        "delta_m_drop": delta_m_drop(mean, stl_mean, dirs) if verdicts else None,
        "complete": have_all,
    }
    report["grouping"] = _grouping(run_dir, groups)
    folder.write_transfer(report)
    folder.write_report_markdown(render_markdown(report))
    own_keys = baseline_keys_for(config, summary)
    stl_curves = {t: rec["curves"] for t in tasks if (rec := cache.load(own_keys[t])) is not None and "curves" in rec}
    _plot(run_dir, report, summary, stl_curves)
    return report


def _grouping(run_dir: Path, groups: int) -> dict[str, Any] | None:
    try:
        diagnostics = RunFolder(run_dir).read_diagnostics() or {}
        names, matrix = diagnostics["tasks"], diagnostics["affinity"]["matrix"]
    except (KeyError, TypeError):
        return None
    if not matrix or len(names) < 2:
        return None
    affinity = {i: {j: float(matrix[a][b]) for b, j in enumerate(names)} for a, i in enumerate(names)}
    result = best_grouping(names, affinity, groups)
    result["requested_groups"] = groups
    return result


def _plot(run_dir: Path, report: dict[str, Any], summary: Summary, stl_curves: dict[str, Any]) -> None:
    """The Δ_t chart, and the learning curves again with the single-task curves overlaid."""
    import logging

    try:
        from mtlrun.report.plots import plot_delta_bars, plot_learning_curves, read_metrics

        deltas = {t: (v["delta"], v["verdict"]) for t, v in report["tasks"].items() if v["delta"] is not None}
        if deltas:
            plot_delta_bars(deltas, run_dir / PLOTS / "delta.png")
        if stl_curves:
            plot_learning_curves(
                read_metrics(run_dir),
                summary.primary,
                run_dir / PLOTS / "learning_curves.png",
                stl_curves,
                summary.directions,
            )
    except Exception as ex:  # a plot must never fail a run
        logging.getLogger("mtlrun").warning("could not draw the report plots: %s", ex)


def _fmt(value: float | None, digits: int = 2, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pm(mean: float, std: float, n: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def render_markdown(report: dict[str, Any]) -> str:
    run = report["run"]
    lines = [
        f"# Negative-transfer report: {run['arch']} + {run['balancer']} on {run['dataset']}",
        "",
        f"Seeds pooled: {', '.join(map(str, report['seeds']))} ({len(report['seeds'])} run(s)). "
        f"Metrics: {report['selection']}. Significance: one-sided Welch t-test, alpha = {report['alpha']}.",
        "",
        f"- **Δm (improvement, higher is better): {_fmt(report['delta_m'])} %**",
        f"- Δm drop (the Nash-MTL/FAMO form, lower is better): {_fmt(report['delta_m_drop'])} %",
        "",
    ]
    rows = [
        [
            task,
            _fmt(v["delta"]),
            v["verdict"],
            "n/a" if v["p_value"] is None else f"{v['p_value']:.4f}",
            v["n_mtl"],
            v["n_stl"],
        ]
        for task, v in report["tasks"].items()
    ]
    rows += [[task, "n/a", "no baseline", "n/a", "", 0] for task in report["missing_baselines"]]
    lines += md_table(["task", "Δ_t (%)", "verdict", "p-value", "MTL seeds", "STL seeds"], rows)
    rows = []
    for task, v in report["tasks"].items():
        for metric, m in v["metrics"].items():
            rows.append(
                [
                    task,
                    metric,
                    "↑" if m["higher_is_better"] else "↓",
                    _pm(m["mtl"], m["mtl_std"], v["n_mtl"]),
                    _pm(m["stl"], m["stl_std"], v["n_stl"]),
                    _fmt(m["delta"]),
                ]
            )
        if v["excluded_metrics"]:
            rows.append([task, ", ".join(v["excluded_metrics"]), "", "", "0", "excluded: STL value is 0"])
    lines += ["", "## Per metric", "", *md_table(["task", "metric", "dir", "MTL", "STL", "change (%)"], rows)]
    grouping = report.get("grouping")
    lines += ["", "## Suggested task grouping", ""]
    if grouping:
        groups = " | ".join("{" + ", ".join(g) + "}" for g in grouping["groups"])
        how = "exhaustive search" if grouping["exhaustive"] else "greedy search"
        lines.append(
            f"Best split into {len(grouping['groups'])} groups by total inter-task affinity (TAG, Fifty et al. 2021; "
            f"{how}): **{groups}**, score {grouping['score']:.4f}. Train the tasks of a group together."
        )
    else:
        lines.append("No affinity measured (diagnostics off or no shared parameters).")
    lines += ["", "## Runs pooled", ""]
    for entry in report["pooled_runs"]:
        lines.append(f"- seed {entry['seed']}: `{entry['folder']}`")
    lines.append("")
    return "\n".join(lines)


def verdict_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"Negative transfer vs single-task baselines (Δm {_fmt(report['delta_m'])} %)")
    for name, justify in (
        ("task", "left"),
        ("Δ_t (%)", "right"),
        ("verdict", "left"),
        ("p", "right"),
        ("seeds", "right"),
    ):
        table.add_column(name, justify=justify)
    colour = {NEGATIVE: "red", POSITIVE: "green"}
    for task, v in report["tasks"].items():
        style = colour.get(v["verdict"], "")
        verdict = f"[{style}]{v['verdict']}[/]" if style else v["verdict"]
        p = "" if v["p_value"] is None else f"{v['p_value']:.3f}"
        table.add_row(task, _fmt(v["delta"]), verdict, p, f"{v['n_mtl']}/{v['n_stl']}")
    for task in report["missing_baselines"]:
        table.add_row(task, "n/a", "no baseline", "", "")
    return table


def print_verdicts(report: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(verdict_table(report))

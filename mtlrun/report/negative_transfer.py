"""The negative-transfer report of a run folder: ``transfer.json``, ``report.md``, the verdict table.

Everything is read back from the folder (``.hydra/config.yaml``, ``summary.json``,
``diagnostics.json``) and the baseline cache, so the report can be rebuilt later, e.g. at the end
of a sweep once every seed has finished. Which runs are pooled as seeds is explicit
(``report.pool``, :mod:`mtlrun.report.pooling`); the statistics are in :mod:`mtlrun.report.transfer`
and :mod:`mtlrun.report.stats`. Every path written is relative to the launch folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mtlrun.report.advice import markdown_lines, pair_conflict, terminal_lines, what_to_try
from mtlrun.report.console import make_console
from mtlrun.report.grouping import affinity_of, command, suggest_grouping
from mtlrun.report.markdown import md_table
from mtlrun.report.pooling import find_pool, relative, sweep_folder
from mtlrun.report.transfer import (
    NEGATIVE,
    POSITIVE,
    UNTESTED,
    TaskVerdict,
    decide,
    delta_m,
    delta_m_drop,
    judge_task,
)
from mtlrun.results.baseline_cache import BaselineCache, baseline_key, baseline_settings
from mtlrun.results.run_folder import PLOTS, LaunchArguments, RunFolder, Summary
from mtlrun.results.transfer_report import MetricTransfer, TaskTransfer, TransferReport

TEST = "two-sided Welch t-test (unequal variances) on per-seed relative scores; direction from the sign of Δ_t"
CI_METHOD = (
    "Welch 95% interval of the difference of the MTL and STL per-seed relative scores "
    "(each seed's metrics relative to the mean STL value, taken as fixed)"
)


@dataclass
class ReportOptions:
    """The ``report:`` settings a report is built with, and the launch folder paths are relative to."""

    alpha: float = 0.05
    groups: int = 2
    correction: str = "holm"
    min_seeds: int = 3
    pool: str = "sweep"
    pool_from: list[str] = field(default_factory=list)
    base: Path = field(default_factory=Path.cwd)

    @classmethod
    def from_config(cls, report: Any, base: Path) -> ReportOptions:
        return cls(
            alpha=float(report.alpha),
            groups=int(report.groups),
            correction=str(report.correction),
            min_seeds=int(report.min_seeds),
            pool=str(report.pool),
            pool_from=[str(p) for p in (report.pool_from or [])],
            base=base,
        )


def baseline_keys_for(config: dict[str, Any], summary: Summary) -> dict[str, str]:
    return {
        task: baseline_key(
            baseline_settings(
                config["dataset"], task, summary.primary[task], summary.encoder, config["trainer"], config["seed"]
            )
        )
        for task in summary.run.tasks or []
    }


def build_report(run_dir: Path, cache: BaselineCache, options: ReportOptions | None = None) -> TransferReport | None:
    """Compute the report of ``run_dir``; write transfer.json, report.md and the Δ chart.

    Returns the report, or None when the run is not complete.
    """
    options = options or ReportOptions()
    base = options.base
    folder = RunFolder(run_dir)
    summary, config = folder.read_summary(), folder.read_config()
    if summary is None or config is None or not summary.completed:
        return None
    tasks = summary.run.tasks or []
    directions = summary.directions
    pool = find_pool(run_dir, options.pool, options.pool_from, base)
    mtl_runs: dict[str, list[dict[str, float]]] = {t: [] for t in tasks}
    stl_runs: dict[str, list[dict[str, float]]] = {t: [] for t in tasks}
    pooled_info, affinities, conflicts, baseline_records = [], [], [], {}
    diagnostics_reason = None
    for other in pool.runs:
        s, c = RunFolder(other).read_summary(), RunFolder(other).read_config()
        if s is None or c is None:
            continue
        keys = baseline_keys_for(c, s)
        mtl = s.results("best", "test")
        stl: dict[str, dict[str, float]] = {}
        for task in tasks:
            mtl_runs[task].append(mtl[task])
            record = cache.load(keys[task])
            if record is not None:
                stl[task] = record["metrics"]["best"]["test"]
                stl_runs[task].append(stl[task])
                if other == Path(run_dir).resolve():
                    baseline_records[task] = record
        dirs = {t: directions[t] for t in stl}
        entry = {
            "folder": relative(other, base),
            "seed": c.get("seed"),
            "baselines": {t: keys[t] if t in stl else None for t in tasks},
            "delta_m": delta_m(mtl, stl, dirs) if stl else None,
        }
        pooled_info.append(entry)
        diagnostics = RunFolder(other).read_diagnostics()
        measured = affinity_of(diagnostics)
        if measured is not None and measured[0] == tasks:
            affinities.append(measured[1])
        cosines = pair_conflict(diagnostics, tasks)
        if cosines is not None:
            conflicts.append(cosines)
        elif other == Path(run_dir).resolve():
            diagnostics_reason = _no_diagnostics_reason(diagnostics, c)
    verdicts: dict[str, TaskVerdict] = {}
    for task in tasks:
        if stl_runs[task]:
            verdicts[task] = judge_task(
                task, mtl_runs[task], stl_runs[task], directions[task], options.alpha, options.min_seeds
            )
    decide(verdicts, options.alpha, options.correction)
    mean = {t: {m: v["mtl"] for m, v in verdicts[t].metrics.items()} for t in verdicts}
    stl_mean = {t: {m: v["stl"] for m, v in verdicts[t].metrics.items()} for t in verdicts}
    dirs = {t: directions[t] for t in verdicts}
    own = next((p for p in pooled_info if p["folder"] == relative(run_dir, base)), None)
    launch = folder.read_launch()
    report = TransferReport(
        run={**asdict(summary.run), "balancer_uses": dict(summary.balancer_uses)},
        selection="test metrics at the best-validation epoch",
        test=TEST,
        ci_method=CI_METHOD,
        alpha=options.alpha,
        correction=options.correction,
        min_seeds=options.min_seeds,
        seeds=[p["seed"] for p in pooled_info],
        pool={
            "mode": options.pool,
            "from": list(options.pool_from),
            "dropped": pool.dropped,
            "sweep_job": sweep_folder(run_dir) is not None,
        },
        pooled_runs=pooled_info,
        baseline_cache=relative(cache.root, base),
        tasks={t: task_transfer(v) for t, v in verdicts.items()},
        missing_baselines=[t for t in tasks if t not in verdicts],
        delta_m=delta_m(mean, stl_mean, dirs) if verdicts else None,
        delta_m_drop=delta_m_drop(mean, stl_mean, dirs) if verdicts else None,
        own={"seed": config.get("seed"), "delta_m": own["delta_m"] if own else None},
        complete=len(verdicts) == len(tasks),
        config=resolved_config(config, summary),
        cost=compute_cost(summary, baseline_records),
        how_to_get_verdicts=verdict_command(launch, pooled_info, verdicts, options.min_seeds),
    )
    report.grouping = suggest_grouping(tasks, affinities, options.groups, launch, summary.balancer_uses)
    report.what_to_try = what_to_try(report, launch, conflicts, affinities, diagnostics_reason)
    own_keys = baseline_keys_for(config, summary)
    stl_curves = {t: rec["curves"] for t in tasks if (rec := cache.load(own_keys[t])) is not None and "curves" in rec}
    _plot(run_dir, report, summary, stl_curves)
    report.plots = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / PLOTS).glob("*.png"))
    folder.write_transfer(report)
    folder.write_report_markdown(render_markdown(report))
    return report


def _no_diagnostics_reason(diagnostics: dict[str, Any] | None, config: dict[str, Any]) -> str:
    """Why a run has no gradient cosines, as its ``diagnostics.json`` or its config says."""
    if diagnostics is None:
        every = (config.get("diagnostics") or {}).get("every")
        return "diagnostics off (diagnostics.every=0)" if every == 0 else "no diagnostics.json"
    return str(diagnostics.get("reason") or "no gradient cosines in diagnostics.json")


def task_transfer(verdict: TaskVerdict) -> TaskTransfer:
    """A task's verdict as the report records it."""
    return TaskTransfer(
        delta=verdict.delta,
        ci95=list(verdict.ci) if verdict.ci is not None else None,
        verdict=verdict.verdict,
        p_value=verdict.p_value,
        p_adjusted=verdict.p_adjusted,
        n_mtl=verdict.n_mtl,
        n_stl=verdict.n_stl,
        metrics={m: MetricTransfer(**values) for m, values in verdict.metrics.items()},
        excluded_metrics=verdict.excluded,
    )


def resolved_config(config: dict[str, Any], summary: Summary) -> dict[str, Any]:
    """The settings a reader of the report needs, with ``encoder=auto`` resolved to what was built."""
    from mtlrun.config.options import OPTIONS

    encoder = dict(summary.encoder) or dict(config.get("encoder") or {})
    defaults = OPTIONS.get(("encoder", str(encoder.get("name"))))
    if defaults is not None:
        from dataclasses import fields

        declared = {
            f.name: (f.default_factory() if callable(f.default_factory) else f.default) for f in fields(defaults)
        }
        encoder = {**{k: v for k, v in declared.items() if v != "???"}, **encoder}
    trainer = config.get("trainer") or {}
    return {
        "dataset": config.get("dataset"),
        "tasks": summary.run.tasks,
        "primary": summary.primary,
        "encoder": encoder,
        "encoder_requested": (config.get("encoder") or {}).get("name"),
        "parameters": summary.parameters,
        "arch": config.get("arch"),
        "balancer": config.get("balancer"),
        "tasks_weights": (config.get("tasks") or {}).get("weights"),
        "schedule": config.get("schedule"),
        "optimizer": {k: trainer.get(k) for k in ("optimizer", "lr", "weight_decay", "momentum", "grad_clip")},
        "epochs": trainer.get("epochs"),
        "batch_size": trainer.get("batch_size"),
        "seed": config.get("seed"),
    }


def compute_cost(summary: Summary, baselines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Parameters and training time of the multi-task model against the sum of its baselines.

    Baselines trained together in one process share one training time, counted once.
    """
    tasks = summary.run.tasks or []
    parameters = [baselines[t].get("parameters") for t in tasks if t in baselines]
    sessions = {}
    for t in tasks:
        trained = (baselines.get(t) or {}).get("trained_with") or {}
        if "train_s" in trained:
            sessions[(tuple(trained.get("tasks") or [t]), trained["train_s"])] = float(trained["train_s"])
    complete = len(baselines) == len(tasks) and tasks
    return {
        "mtl_parameters": (summary.parameters or {}).get("total"),
        "mtl_train_s": (summary.timings or {}).get("train_s"),
        "baseline_parameters": sum(parameters) if complete and all(p is not None for p in parameters) else None,
        "baseline_train_s": sum(sessions.values()) if complete and sessions else None,
        "baselines": len(baselines),
    }


def verdict_command(
    launch: LaunchArguments, pooled: Sequence[dict[str, Any]], verdicts: dict[str, TaskVerdict], min_seeds: int
) -> str | None:
    """The sweep that gives every task enough seeds for a verdict, or None when none is missing."""
    if not any(v.verdict.startswith(UNTESTED) for v in verdicts.values()) or len(pooled) >= min_seeds:
        return None
    seeds = [p["seed"] for p in pooled if isinstance(p["seed"], int)]
    wanted = list(seeds)
    candidate = 0
    while len(wanted) < min_seeds:
        if candidate not in wanted:
            wanted.append(candidate)
        candidate += 1
    seed_list = ",".join(str(s) for s in sorted(wanted))
    return command(launch, "-m", f"seed={seed_list}", drop=("seed",))


def _plot(run_dir: Path, report: TransferReport, summary: Summary, stl_curves: dict[str, Any]) -> None:
    """The Δ_t chart (with its 95% intervals), the trade-off against the single-task point, and the
    learning curves with the single-task curves overlaid."""
    import logging

    try:
        from mtlrun.report.plots import plot_delta_bars, plot_learning_curves, plot_tradeoff, read_metrics

        deltas = {t: (v.delta, v.verdict) for t, v in report.tasks.items() if v.delta is not None}
        intervals = {t: (v.ci95[0], v.ci95[1]) for t, v in report.tasks.items() if v.ci95 and t in deltas}
        if deltas:
            plot_delta_bars(deltas, run_dir / PLOTS / "delta.png", intervals)
        plot_tradeoff(report.tasks, summary.primary, run_dir / PLOTS / "tradeoff.png")
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


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "n/a" if not ci else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _pm(mean: float, std: float | None, n: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if n > 1 and std is not None else f"{mean:.4f}"


def _options(node: Any) -> str:
    """``hps`` or ``famo (gamma=0.01, w_lr=0.025)`` from a config node."""
    if not isinstance(node, dict):
        return "n/a" if node is None else str(node)
    rest = ", ".join(f"{k}={v}" for k, v in node.items() if k != "name")
    return f"{node.get('name')} ({rest})" if rest else str(node.get("name"))


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "n/a"


def _seconds(s: Any) -> str:
    return f"{float(s):.1f} s" if isinstance(s, (int, float)) else "n/a"


def _config_lines(config: dict[str, Any]) -> list[str]:
    encoder = dict(config["encoder"])
    name = encoder.pop("name", "?")
    auto = " (`encoder=auto` resolved)" if config.get("encoder_requested") == "auto" else ""
    sizes = config.get("parameters") or {}
    per_task = sizes.get("per_task") or {}
    opt = config["optimizer"]
    lines = [
        f"- dataset: {_options(config['dataset'])}",
        f"- tasks: {', '.join(config['tasks'] or [])} (primary: "
        + ", ".join(f"{t} {m}" for t, m in (config.get("primary") or {}).items())
        + ")",
        f"- encoder: {_options({'name': name, **encoder})}{auto}; shared parameters {_count(sizes.get('shared'))}, "
        f"per-task parameters " + ", ".join(f"{t} {_count(n)}" for t, n in per_task.items()),
        f"- architecture: {_options(config['arch'])}",
        f"- balancer: {_options(config['balancer'])}"
        + (f"; task weights {config['tasks_weights']}" if config.get("tasks_weights") else ""),
        f"- schedule: {_options(config.get('schedule'))}",
        f"- optimizer: {opt['optimizer']}, lr {opt['lr']}, weight decay {opt['weight_decay']}"
        + (f", momentum {opt['momentum']}" if opt["optimizer"] == "sgd" else "")
        + (f", gradient clipping {opt['grad_clip']}" if opt.get("grad_clip") else ""),
        f"- epochs {config['epochs']}, batch size {config['batch_size']}",
    ]
    return lines


def _cost_lines(cost: dict[str, Any]) -> list[str]:
    rows = [
        ["multi-task model", _count(cost["mtl_parameters"]), _seconds(cost["mtl_train_s"])],
        [
            f"sum of the {cost['baselines']} single-task baselines",
            _count(cost["baseline_parameters"]),
            _seconds(cost["baseline_train_s"]),
        ],
    ]
    lines = md_table(["model", "parameters", "training time"], rows)
    mp, bp = cost["mtl_parameters"], cost["baseline_parameters"]
    if isinstance(mp, int) and isinstance(bp, int) and bp:
        lines += ["", f"The multi-task model has {mp / bp:.2f}× the parameters of its baselines together."]
    lines += ["", "Training time excludes evaluation; baselines trained together in one process are counted once."]
    return lines


def _grouping_lines(grouping: dict[str, Any] | None, negative: Sequence[str] = ()) -> list[str]:
    if not grouping:
        return ["No affinity measured (diagnostics off, fewer than two tasks, or no shared parameters)."]
    groups = " | ".join("{" + ", ".join(g) + "}" for g in grouping["groups"])
    how = "exhaustive search" if grouping["exhaustive"] else "greedy search"
    count = len(grouping["groups"])
    split = "one group (all tasks together)" if count == 1 else f"{count} groups"
    lines = [
        f"Best split into at most {grouping['requested_groups']} groups by total inter-task affinity (TAG, "
        f"Fifty et al. 2021; {how}, affinity averaged over {grouping['seeds']} seed(s)): {split}, **{groups}**, "
        f"score {grouping['score']:.4f}."
    ]
    if grouping["runner_up"] is None:
        lines.append("There is no other split to compare with: no stable grouping to suggest.")
        return lines
    runner = " | ".join("{" + ", ".join(g) + "}" for g in grouping["runner_up"])
    spread = "unknown (one seed)" if grouping["spread"] is None else f"{grouping['spread']:.4f}"
    lines.append(
        f"Runner-up {runner}, score {grouping['runner_up_score']:.4f}: margin {grouping['margin']:.4f}, "
        f"seed-to-seed spread of the margin (std) {spread}."
    )
    if not grouping["stable"]:
        lines += ["", "**No stable grouping**: the margin does not exceed the seed-to-seed spread."]
        return lines
    if count == 1 and negative:
        lines += [
            "",
            "The affinity does not separate the tasks, but the negative-transfer verdict of "
            f"{', '.join(negative)} contradicts training them all together: see *What to try*.",
        ]
        return lines
    if count == 1:
        lines += ["", "The margin exceeds the seed-to-seed spread: train all tasks together, as this run does."]
        return lines
    lines += ["", "The margin exceeds the seed-to-seed spread. To train the suggested groups:", ""]
    for entry in grouping["commands"]:
        lines += [f"- {entry['what']}:", "", "  ```", f"  {entry['command']}", "  ```"]
    return lines


def render_markdown(report: TransferReport) -> str:
    run, own = report.run, report.own or {}
    correction = {"holm": "Holm's correction across the run's tasks", "none": "no correction"}[report.correction]
    lines = [
        f"# Negative-transfer report: {run['arch']} + {run['balancer']} on {run['dataset']}",
        "",
        f"Seeds pooled: {', '.join(map(str, report.seeds))} ({len(report.seeds)} run(s), "
        f"pooling `report.pool={report.pool['mode']}`). Metrics: {report.selection}.",
        "",
        f"Significance: {report.test}, alpha = {report.alpha}, {correction}; a verdict needs "
        f"{report.min_seeds} seeds on each side. Confidence intervals: {report.ci_method}.",
        "",
        f"- **Δm (improvement, higher is better): {_fmt(report.delta_m)} %**",
        f"- Δm drop (the Nash-MTL/FAMO form, lower is better): {_fmt(report.delta_m_drop)} %",
        f"- Δm of this run's seed ({own.get('seed')}) against its own-seed baselines: {_fmt(own.get('delta_m'))} %",
        "",
    ]
    adjusted = "p (Holm)" if report.correction == "holm" else "p (adjusted)"
    rows = [
        [
            task,
            _fmt(v.delta),
            _ci(v.ci95),
            v.verdict,
            _p(v.p_value),
            _p(v.p_adjusted),
            v.n_mtl,
            v.n_stl,
        ]
        for task, v in report.tasks.items()
    ]
    rows += [[task, "n/a", "n/a", "no baseline", "n/a", "n/a", "", 0] for task in report.missing_baselines]
    header = ["task", "Δ_t (%)", "95% CI (%)", "verdict", "p (raw)", adjusted, "MTL seeds", "STL seeds"]
    lines += md_table(header, rows)
    if report.how_to_get_verdicts:
        lines += [
            "",
            "## How to get verdicts",
            "",
            f"A verdict needs {report.min_seeds} seeds on each side; run the seeds as one sweep "
            "(reports pool the runs of their own sweep):",
            "",
            "```",
            report.how_to_get_verdicts,
            "```",
        ]
    lines += ["", "## What to try", "", *markdown_lines(report.what_to_try, report.how_to_get_verdicts)]
    rows = []
    for task, v in report.tasks.items():
        for metric, m in v.metrics.items():
            rows.append(
                [
                    task,
                    metric,
                    "↑" if m.higher_is_better else "↓",
                    _pm(m.mtl, m.mtl_std, v.n_mtl),
                    _pm(m.stl, m.stl_std, v.n_stl),
                    _fmt(m.delta),
                ]
            )
        if v.excluded_metrics:
            rows.append([task, ", ".join(v.excluded_metrics), "", "", "0", "excluded: STL value is 0"])
    lines += ["", "## Per metric", "", *md_table(["task", "metric", "dir", "MTL", "STL", "change (%)"], rows)]
    lines += ["", "## Configuration", "", *_config_lines(report.config)]
    lines += ["", "## Compute cost", "", *_cost_lines(report.cost)]
    lines += ["", "## Suggested task grouping", "", *_grouping_lines(report.grouping, report.negative_tasks)]
    if report.plots:
        lines += ["", "## Plots", "", *(f"- [{Path(p).stem}]({p})" for p in report.plots)]
    lines += ["", "## Runs pooled", "", "Paths are relative to the folder the run was launched from.", ""]
    for entry in report.pooled_runs:
        lines.append(f"- seed {entry['seed']}: `{entry['folder']}` (Δm of this seed {_fmt(entry['delta_m'])} %)")
    for entry in report.pool["dropped"]:
        lines.append(f"- not pooled: `{entry['folder']}` (seed {entry['seed']}): {entry['reason']}")
    lines += ["", f"Baseline cache: `{report.baseline_cache}`.", ""]
    return "\n".join(lines)


def verdict_table(report: TransferReport) -> Table:
    table = Table(title=f"Negative transfer vs single-task baselines (Δm {_fmt(report.delta_m)} %)")
    p_name = "p (Holm)" if report.correction == "holm" else "p"
    for name, justify in (
        ("task", "left"),
        ("Δ_t (%)", "right"),
        ("95% CI", "right"),
        ("verdict", "left"),
        (p_name, "right"),
        ("seeds", "right"),
    ):
        table.add_column(name, justify=justify)
    colour = {NEGATIVE: "red", POSITIVE: "green"}
    for task, v in report.tasks.items():
        style = colour.get(v.verdict, "")
        verdict = f"[{style}]{v.verdict}[/]" if style else v.verdict
        p = "" if v.p_adjusted is None else f"{v.p_adjusted:.3f}"
        table.add_row(task, _fmt(v.delta), _ci(v.ci95), verdict, p, f"{v.n_mtl}/{v.n_stl}")
    for task in report.missing_baselines:
        table.add_row(task, "n/a", "", "no baseline", "", "")
    return table


def print_verdicts(report: TransferReport, console: Console | None = None) -> None:
    console = console or make_console()
    console.print(verdict_table(report))
    # a sweep job's report is rebuilt with the sweep's other seeds when the sweep ends
    if report.how_to_get_verdicts and not report.pool.get("sweep_job"):
        # no markup (brackets of list values are not rich tags), and never broken across lines
        console.print(f"for verdicts: {report.how_to_get_verdicts}", markup=False, highlight=False, soft_wrap=True)
    if not report.pool.get("sweep_job"):  # a sweep prints its jobs' advice once all seeds are pooled
        print_what_to_try(report, console)


def print_what_to_try(report: TransferReport, console: Console | None = None) -> None:
    """The ranked candidates of ``report.what_to_try``, each command on a line of its own, as printed runnable."""
    console = console or make_console()
    for line in terminal_lines(report.what_to_try):
        console.print(line, markup=False, highlight=False, soft_wrap=True)

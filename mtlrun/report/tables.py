"""Terminal tables (rich): the per-task summary printed at the end of every run."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from mtlrun.report.console import make_console
from mtlrun.results.run_folder import Summary


def run_table(summary: Summary) -> Table:
    """One row per task and metric: test value at the last epoch and at the best-validation epoch."""
    last, best = summary.results("last", "test"), summary.results("best", "test")
    run = summary.run
    table = Table(title=f"{run.arch} + {run.balancer} on {run.dataset}")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("dir", justify="center")
    table.add_column(f"test @ last (ep {summary.epoch('last')})", justify="right")
    table.add_column(f"test @ best val (ep {summary.epoch('best')})", justify="right")
    for task, values in last.items():
        for i, (metric, value) in enumerate(values.items()):
            arrow = "↑" if summary.directions[task][metric] else "↓"
            name = f"[bold]{metric}[/]" if summary.primary[task] == metric else metric
            table.add_row(task if i == 0 else "", name, arrow, f"{value:.4f}", f"{best[task][metric]:.4f}")
        table.add_section()
    return table


def print_run_summary(summary: Summary, folder: Path, console: Console | None = None) -> None:
    console = console or make_console()
    if summary.completed:
        console.print(run_table(summary))
        timings = summary.timings
        console.print(f"trained in {timings['train_s']:.1f} s ({timings['steps_per_s']} steps/s)")
    else:
        console.print(f"[bold red]run {summary.status}[/]: {summary.error or ''}")
    console.print(f"run folder: {folder}")

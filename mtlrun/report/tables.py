"""Terminal tables (rich): the per-task summary printed at the end of every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def run_table(summary: dict[str, Any]) -> Table:
    """One row per task and metric: test value at the last epoch and at the best-validation epoch."""
    metrics = summary["metrics"]
    best_epoch = metrics["best"]["epoch"]
    table = Table(title=f"{summary['run']['arch']} + {summary['run']['balancer']} on {summary['run']['dataset']}")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("dir", justify="center")
    table.add_column(f"test @ last (ep {metrics['last']['epoch']})", justify="right")
    table.add_column(f"test @ best val (ep {best_epoch})", justify="right")
    for task, values in metrics["last"]["test"].items():
        for i, (metric, value) in enumerate(values.items()):
            primary = summary["primary"][task] == metric
            arrow = "↑" if summary["directions"][task][metric] else "↓"
            name = f"[bold]{metric}[/]" if primary else metric
            table.add_row(
                task if i == 0 else "", name, arrow, f"{value:.4f}", f"{metrics['best']['test'][task][metric]:.4f}"
            )
        table.add_section()
    return table


def print_run_summary(summary: dict[str, Any], folder: Path, console: Console | None = None) -> None:
    console = console or Console()
    if summary.get("status") == "completed":
        console.print(run_table(summary))
        timings = summary["timings"]
        console.print(f"trained in {timings['train_s']:.1f} s ({timings['steps_per_s']} steps/s)")
    else:
        console.print(f"[bold red]run {summary.get('status')}[/]: {summary.get('error', '')}")
    console.print(f"run folder: {folder}")

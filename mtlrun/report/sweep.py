"""The sweep-end summary: a Hydra callback that pools a multirun's job folders when it ends.

It writes ``sweep_summary.json`` and ``sweep_report.md`` into the sweep folder (one row per
configuration, seeds pooled; Δm, rank, Pareto set; failed, diverged and incomplete jobs with
their reason), prints the table, and then makes the sweep exit with status 1 when any job failed,
was interrupted or left no finished summary (a diverged job is a result, not a failure). It runs
in the process that launched the sweep, whatever the launcher.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console

from mtlrun.report.aggregate import Comparison, compare
from mtlrun.report.compare import render_markdown, render_table
from mtlrun.report.console import make_console
from mtlrun.report.folders import read_runs
from mtlrun.results.atomic import write_json, write_text
from mtlrun.results.run_folder import SWEEP_REPORT, SWEEP_SUMMARY, TRANSFER
from mtlrun.results.transfer_report import TransferReport

log = logging.getLogger("mtlrun")

#: job outcomes that make the sweep's exit status non-zero
FAILED = ("failed", "interrupted", "incomplete")


def summarize_sweep(sweep_dir: Path, console: Console | None = None) -> Comparison:
    """Write the two summary files for ``sweep_dir`` and return the comparison."""
    comparison = compare(read_runs([sweep_dir]))
    write_json(sweep_dir / SWEEP_SUMMARY, {"sweep_dir": str(sweep_dir), **comparison.as_dict()})
    write_text(sweep_dir / SWEEP_REPORT, render_markdown(comparison, title=f"Sweep {sweep_dir}"))
    if console is not None:
        render_table(comparison, console)
    return comparison


def refresh_transfer_reports(sweep_dir: Path, config: DictConfig) -> list[tuple[Path, TransferReport]]:
    """Rebuild each job's negative-transfer report now that every seed of the sweep has finished,
    so the reports pool all seeds of the sweep (a job only sees the seeds that finished before it);
    returns the job folders and their rebuilt reports."""
    from mtlrun.report.negative_transfer import ReportOptions, build_report
    from mtlrun.results.baseline_cache import BaselineCache

    report = config.get("report")
    if report is None or report.baselines is False:
        return []
    launch = Path.cwd()
    cache = BaselineCache((launch / str(report.cache_dir)).resolve())
    options = ReportOptions.from_config(report, launch)
    rebuilt = []
    for transfer in sorted(sweep_dir.glob(f"*/{TRANSFER}")):
        try:
            built = build_report(transfer.parent, cache, options)
        except Exception as ex:  # one unreadable job must not hide the others
            log.warning("could not refresh the report of %s: %s", transfer.parent, ex)
            continue
        if built is not None:
            rebuilt.append((transfer.parent, built))
    return rebuilt


def print_sweep_advice(reports: list[tuple[Path, TransferReport]], console: Console) -> None:
    """The what-to-try of the sweep's pooled reports: once per distinct advice (the seeds of one
    configuration pool the same runs and give the same advice), naming the job folders it covers."""
    from mtlrun.report.advice import terminal_lines

    advice: dict[str, tuple[list[str], list[str]]] = {}
    for folder, report in reports:
        what = report.what_to_try or {}
        if what.get("status") != "negative":
            continue
        lines = terminal_lines(what)
        advice.setdefault("\n".join(lines), ([], lines))[0].append(folder.name)
    for folders, lines in advice.values():
        console.print(f"jobs {', '.join(folders)}:", markup=False, highlight=False, soft_wrap=True)
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if reports and not advice and any((r.what_to_try or {}).get("status") == "none" for _, r in reports):
        console.print("what to try: no job shows significant negative transfer: nothing to fix.", markup=False)


def failed_jobs(comparison: Comparison) -> list[str]:
    return [f"{p.path.name}: {p.status} ({p.reason})" for p in comparison.problems if p.status in FAILED]


class SweepSummary(Callback):
    """Registered as ``hydra.callbacks.sweep_summary`` (conf/hydra/callbacks/mtlrun.yaml)."""

    def __init__(self, fail_on_error: bool = True) -> None:
        self.fail_on_error = fail_on_error

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        console = make_console()
        reports = refresh_transfer_reports(sweep_dir, config)
        comparison = summarize_sweep(sweep_dir, console)
        print_sweep_advice(reports, console)
        console.print(f"sweep summary: {sweep_dir / 'sweep_report.md'}")
        failures = failed_jobs(comparison)
        if failures:
            for line in failures:
                log.error("job %s", line)
            if self.fail_on_error:
                console.print(f"[bold red]{len(failures)} job(s) of the sweep failed[/]")
                raise SystemExit(1)

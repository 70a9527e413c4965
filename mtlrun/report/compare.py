"""``mtlrun-compare PATH...``: one table of many runs, one row per configuration (seeds pooled).

PATH may be a run folder, a sweep folder or any folder above them. Only JSON and YAML are read,
and torch is never imported, so the command starts fast and is safe on folders from anywhere.
Formats: a rich table (terminal), Markdown, CSV (separate mean and std columns) and JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mtlrun.errors import ConfigError
from mtlrun.report.aggregate import RANK_RULES, Comparison, Row, Stat, compare, short_key, text
from mtlrun.report.compare_keys import check_config_keys, check_filter_values, check_sort_key
from mtlrun.report.console import UNLIMITED, make_console
from mtlrun.report.folders import read_runs
from mtlrun.report.markdown import md_table
from mtlrun.report.output_args import OneLineParser, check_output_file, write_failed
from mtlrun.results.atomic import write_text

FORMATS = ("table", "md", "csv", "json")
#: how a missing value reads in the table and Markdown (the CSV leaves the cell empty)
MISSING = text(None)


def cell(stat: Stat | None, digits: int = 4) -> str:
    if stat is None:
        return "—"
    if stat.std is None:
        return f"{stat.mean:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"


def _score(row: Row) -> str:
    return f"{row.score * 100:+.2f}%" if row.score is not None else "—"


#: the ranking rule's column name; the table shows the rule it ranks by, and only that one
RULE_NAMES = {"delta_m": "Δm", "score": "score"}


def _header(comparison: Comparison) -> list[str]:
    arrows = {True: "↑", False: "↓"}
    rule = RULE_NAMES[comparison.ranked_by]
    return [
        f"rank ({rule})",
        *(short_key(k) for k in comparison.label_keys),
        *(f"{c.task} {c.metric} {arrows[c.higher_is_better]}" for c in comparison.columns),
        f"{rule} ↑",
        "pareto",
        "status",
    ]


def _cells(comparison: Comparison, row: Row) -> list[str]:
    return [
        str(row.rank) if row.rank is not None else "—",
        *(row.label[k] for k in comparison.label_keys),
        *(cell(row.metrics.get(c.name)) for c in comparison.columns),
        cell(row.delta_m, 2) if comparison.ranked_by == "delta_m" else _score(row),
        "yes" if row.pareto else "",
        row.status_text(),
    ]


def _notes(comparison: Comparison) -> list[str]:
    if comparison.ranked_by == "delta_m":
        ranked = "Δm: each seed's Δm against its own-seed single-task baselines, mean ± std over seeds"
    else:
        ranked = "score: mean relative primary score against the mean over rows"
    other = "score" if comparison.ranked_by == "delta_m" else "delta_m"
    notes = [
        f"ranked by {ranked} (mtlrun-compare --rank-by {other} for the other rule); "
        "test metrics, mean ± std over the completed runs of each row"
    ]
    if comparison.pooled:
        notes.append("pooled over: " + ", ".join(comparison.pooled))
    if comparison.mixed:
        notes.append(mixed_warning(comparison))
    return notes


def mixed_warning(comparison: Comparison) -> str:
    """One line naming the keys that rows average over although they change results."""
    return (
        f"rows average runs that differ in {', '.join(comparison.mixed)} "
        "(add them to --by to split the rows, or --strict to refuse)"
    )


def unlike_runs_warning(comparison: Comparison) -> str | None:
    """One line when the ranked rows hold runs of different datasets or task sets: a rank, a
    score or Δm across them compares numbers that do not measure the same thing."""
    ranked = [run for row in comparison.rows if row.rank is not None for run in row.completed]
    if len({row.title() for row in comparison.rows if row.rank is not None}) < 2:
        return None
    datasets = sorted({str(run.value("dataset") or run.config.get("dataset._target_") or "?") for run in ranked})
    task_sets = sorted({",".join(sorted(run.metrics)) for run in ranked})
    problems = []
    if len(datasets) > 1:
        problems.append(f"datasets ({'; '.join(datasets)})")
    if len(task_sets) > 1:
        problems.append(f"task sets ({'; '.join(task_sets)})")
    if not problems:
        return None
    key = "dataset" if len(datasets) > 1 else "tasks"
    return (
        f"ranking runs of different {' and '.join(problems)} together: their ranks are not comparable; "
        f"compare one at a time (--filter {key}=...)"
    )


def _difference_rows(comparison: Comparison) -> list[tuple[str, str, str]]:
    role = {k: "row" for k in comparison.label_keys}
    return [
        (key, ", ".join(values), role.get(key, role.get(short_key(key), "pooled")))
        for key, values in comparison.differences.items()
    ]


def render_table(comparison: Comparison, console: Console) -> None:
    table = Table(title=f"{sum(len(r.runs) for r in comparison.rows)} runs, {len(comparison.rows)} configurations")
    for i, name in enumerate(_header(comparison)):
        table.add_column(name, justify="right" if i == 0 or "↑" in name or "↓" in name else "left")
    for row in comparison.rows:
        table.add_row(*_cells(comparison, row), style="bold" if row.pareto else None)
    console.print(table)
    for note in _notes(comparison):
        console.print(note)
    if comparison.differences:
        diff = Table(title="config keys that differ")
        for name in ("key", "values", "role"):
            diff.add_column(name)
        for entry in _difference_rows(comparison):
            diff.add_row(*entry)
        console.print(diff)
    if comparison.problems:
        problems = Table(title="runs without results (listed, not pooled)")
        for name in ("run", "status", "reason"):
            problems.add_column(name)
        for run in comparison.problems:
            problems.add_row(str(run.path), run.status, run.reason or "")
        console.print(problems)


def render_markdown(comparison: Comparison, title: str = "Comparison") -> str:
    lines = [f"# {title}", ""]
    lines += md_table(_header(comparison), [_cells(comparison, row) for row in comparison.rows])
    lines += ["", *(f"- {note}" for note in _notes(comparison))]
    pareto = [row.title() for row in comparison.rows if row.pareto]
    if pareto:
        lines += ["", "## Pareto-optimal configurations", "", *(f"- {name}" for name in pareto)]
    if comparison.differences:
        lines += ["", "## Config keys that differ", ""]
        lines += md_table(("key", "values", "role"), _difference_rows(comparison))
    if comparison.problems:
        lines += ["", "## Runs without results", ""]
        lines += md_table(
            ("run", "status", "reason"), [(str(r.path), r.status, r.reason or "") for r in comparison.problems]
        )
    return "\n".join(lines) + "\n"


def render_csv(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["rank", *comparison.label_keys]
    for c in comparison.columns:
        header += [f"{c.name} mean", f"{c.name} std"]
    header += ["delta_m mean", "delta_m std", "score", "pareto", "completed", "runs", "status"]
    writer.writerow(header)

    def numbers(stat: Stat | None) -> list[str]:
        if stat is None:
            return ["", ""]
        return [repr(stat.mean), repr(stat.std) if stat.std is not None else ""]

    for row in comparison.rows:
        # a run without the key has the label "—" on screen; a spreadsheet wants an empty cell
        labels = ("" if row.label[k] == MISSING else row.label[k] for k in comparison.label_keys)
        values = [row.rank if row.rank is not None else "", *labels]
        for c in comparison.columns:
            values += numbers(row.metrics.get(c.name))
        values += [
            *numbers(row.delta_m),
            repr(row.score) if row.score is not None else "",
            int(row.pareto),
            len(row.completed),
            len(row.runs),
            row.status_text(),
        ]
        writer.writerow(values)
    return buffer.getvalue()


def render(comparison: Comparison, fmt: str, console: Console | None = None) -> str:
    """The comparison as text in ``fmt``; the rich table is rendered without colour codes."""
    if fmt == "md":
        return render_markdown(comparison)
    if fmt == "csv":
        return render_csv(comparison)
    if fmt == "json":
        return json.dumps(comparison.as_dict(), indent=2) + "\n"
    capture = Console(file=io.StringIO(), width=console.width if console else UNLIMITED, no_color=True, highlight=False)
    render_table(comparison, capture)
    return capture.file.getvalue()


def _filters(items: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    filters = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--filter {item!r} must look like KEY=VALUE, e.g. --filter dataset=multi_digits")
        filters[key.strip()] = value.strip()
    return filters


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mtlrun-compare",
        description="Compare mtlrun run folders: one row per configuration, seeds pooled (mean ± std).",
        epilog="Example: mtlrun-compare multirun/2026-11-26 --by arch,balancer --format md --plot cmp.png",
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="run folders, sweep folders, or any folder above them"
    )
    parser.add_argument(
        "--by",
        default=None,
        help="comma-separated config keys forming the rows (dotted keys of .hydra/config.yaml; "
        "a group name such as arch gives its choice); default: the keys that differ, seed pooled",
    )
    parser.add_argument(
        "--sort",
        default=None,
        metavar="KEY",
        help="rank (default), delta_m, score, a task or TASK/METRIC (best first), or a config key; "
        "prefix '-' to reverse (--sort=-score)",
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep runs whose config KEY equals VALUE (repeatable)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the output to FILE")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="also draw per-task points with error bars (and the 2-task trade-off with its Pareto front)",
    )
    parser.add_argument(
        "--rank-by",
        choices=RANK_RULES,
        default=None,
        help="the ranking rule: delta_m (each seed against its own-seed baselines) or score (mean relative "
        "primary score); default: delta_m when every row has it, else score",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse (exit 2) to average runs whose configs differ in keys that change results (epochs, lr, tasks...)",
    )
    parser.add_argument("--all-metrics", action="store_true", help="a column for every metric, not only primaries")
    parser.add_argument(
        "--at",
        choices=("best", "last"),
        default="best",
        help="test metrics at the best-validation epoch (default) or the last epoch",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``mtlrun-compare`` console script; returns the exit status (0 ok, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # before any folder is read: a file that cannot be written is refused up front
        if args.out is not None:
            check_output_file("--out", args.out)
        if args.plot is not None:
            from mtlrun.report.compare_plot import plot_formats

            check_output_file("--plot", args.plot, plot_formats())
    except ConfigError as ex:
        print(f"mtlrun-compare: error: {ex}", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.paths if not p.is_dir()]
    if missing:
        print(f"mtlrun-compare: error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = read_runs(args.paths, at=args.at)
    if not runs:
        print(f"mtlrun-compare: error: no run folders under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else None
    filters = _filters(args.filter, parser)
    try:
        check_config_keys("--by", by or [], runs)
        check_config_keys("--filter", filters, runs)
        check_filter_values(filters, runs)
        comparison = compare(
            runs, by=by, filters=filters, all_metrics=args.all_metrics, sort=args.sort, rank_by=args.rank_by
        )
        check_sort_key(args.sort, runs, comparison.columns)
    except ConfigError as ex:
        print(f"mtlrun-compare: error: {ex}", file=sys.stderr)
        return 2
    if comparison.mixed:
        if args.strict:
            print(f"mtlrun-compare: error: {mixed_warning(comparison)}", file=sys.stderr)
            return 2
        print(f"mtlrun-compare: warning: {mixed_warning(comparison)}", file=sys.stderr)
    unlike = unlike_runs_warning(comparison)
    if unlike is not None:
        print(f"mtlrun-compare: warning: {unlike}", file=sys.stderr)
    # piped output (a file, a pager, a batch log) gets rows as wide as they need, never a cut number
    console = make_console()
    if args.out is not None:
        try:
            write_text(args.out, render(comparison, args.format, console))
        except OSError as ex:
            return write_failed("--out", args.out, ex)
        print(f"wrote {args.out}", file=sys.stderr)
    elif args.format == "table":
        render_table(comparison, console)
    else:
        sys.stdout.write(render(comparison, args.format))
    if args.plot is not None:
        from mtlrun.report.compare_plot import plot_comparison

        try:
            drawn = plot_comparison(comparison, args.plot)
        except OSError as ex:
            return write_failed("--plot", args.plot, ex)
        if not drawn:
            print("mtlrun-compare: error: nothing to plot: no completed runs", file=sys.stderr)
            return 1
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()

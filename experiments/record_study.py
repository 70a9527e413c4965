"""Record a finished study: the compare table and plot, the sweep report, and the verdict table.

    python experiments/record_study.py SWEEP_FOLDER [SWEEP_FOLDER ...] --out OUT_FOLDER --by balancer [--by arch ...]

Writes into OUT_FOLDER: ``compare.md`` and ``compare.png`` (``mtlrun-compare SWEEPS --by ... --format md
--plot``), ``sweep_report.md`` (each sweep's own summary, one after the other) and ``verdicts.md``: per row, the
negative-transfer report of the run that pooled the most seeds (its Δ_t, verdict and Holm-adjusted
p-value per task, and Δm). A row is named by the ``--by`` keys: a config group (``balancer``, ``arch``)
gives the choice as written on the command line (``mgda_ub``), a dotted key its value.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def choices(job: Path) -> dict[str, str]:
    """The group choices Hydra recorded for a job (``{"balancer": "mgda_ub", ...}``)."""
    hydra = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())
    return {str(k): str(v) for k, v in hydra["hydra"]["runtime"]["choices"].items()}


def value_of(job: Path, key: str) -> str:
    """A row key of a job: the group choice where ``key`` is a group, else the dotted config value."""
    picked = choices(job)
    if key in picked:
        return picked[key]
    node: Any = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    for part in key.split("."):
        node = node[part]
    return f"{node:g}" if isinstance(node, float) else str(node)


def jobs(sweep: Path) -> list[Path]:
    """The completed job folders of a sweep, in job order."""
    found = []
    for summary in sweep.glob("*/summary.json"):
        if json.loads(summary.read_text()).get("status") == "completed":
            found.append(summary.parent)
    return sorted(found, key=lambda p: int(p.name) if p.name.isdigit() else p.name)


def rows(sweeps: Path | Sequence[Path], by: Sequence[str]) -> dict[tuple[str, ...], list[Path]]:
    """The completed jobs of one or more sweeps grouped by the ``by`` keys, in first-seen order."""
    grouped: dict[tuple[str, ...], list[Path]] = defaultdict(list)
    for sweep in [sweeps] if isinstance(sweeps, Path) else sweeps:
        for job in jobs(sweep):
            grouped[tuple(value_of(job, key) for key in by)].append(job)
    return dict(grouped)


def test_metrics(job: Path, metric_of: dict[str, str] | None = None) -> dict[str, float]:
    """``{task: primary test metric at the best-validation epoch}`` of one job."""
    summary = json.loads((job / "summary.json").read_text())
    primary = metric_of or summary["primary"]
    return {task: summary["metrics"]["best"]["test"][task][metric] for task, metric in primary.items()}


def fullest_report(folders: Sequence[Path]) -> dict[str, Any] | None:
    """The transfer report among ``folders`` that pooled the most seeds (None when no run has one)."""
    reports = [json.loads((f / "transfer.json").read_text()) for f in folders if (f / "transfer.json").exists()]
    return max(reports, key=lambda r: len(r["seeds"])) if reports else None


def verdict_table(grouped: dict[tuple[str, ...], list[Path]], by: Sequence[str]) -> str:
    """Per row: seeds pooled, each task's Δ_t with verdict and Holm-adjusted p, and Δm (mean ± std over seeds)."""
    reports = {key: fullest_report(folders) for key, folders in grouped.items()}
    tasks = next((list(r["tasks"]) for r in reports.values() if r), [])
    header = " | ".join(by) + " | seeds | " + " | ".join(f"Δ_{t} (%) | {t} verdict (p Holm)" for t in tasks)
    lines = [f"| {header} | Δm (%) |", "|" + "---|" * len(by) + "---:|" + "---:|---|" * len(tasks) + "---:|"]
    for key, report in reports.items():
        if report is None:
            continue
        cells = []
        for task in tasks:
            t = report["tasks"][task]
            p = t.get("p_adjusted")
            cells += [f"{t['delta']:+.2f}", f"{t['verdict']} ({p:.3f})" if p is not None else t["verdict"]]
        per_seed = [
            json.loads((f / "transfer.json").read_text())["own"]["delta_m"]
            for f in grouped[key]
            if (f / "transfer.json").exists()
        ]
        dm = f"{statistics.fmean(per_seed):+.2f}" + (
            f" ± {statistics.stdev(per_seed):.2f}" if len(per_seed) > 1 else ""
        )
        lines.append(f"| {' | '.join(key)} | {len(report['seeds'])} | " + " | ".join(cells) + f" | {dm} |")
    lines.append(
        "\nΔ_t: the relative change of the task's metrics against its single-task networks (mean over seeds); "
        "the verdict: Welch's two-sided test over seeds, Holm-corrected across the row's tasks; "
        "Δm: each seed's against its own-seed baselines, mean ± std.\n"
    )
    return "\n".join(lines) + "\n"


def record(sweeps: Sequence[Path], out: Path, by: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    compare = Path(sys.executable).with_name("mtlrun-compare")
    table, plot = str(out / "compare.md"), str(out / "compare.png")
    subprocess.run(
        [str(compare), *map(str, sweeps), "--by", ",".join(by), "--format", "md", "--out", table, "--plot", plot],
        check=True,
    )
    reports = [(s / "sweep_report.md").read_text() for s in sweeps if (s / "sweep_report.md").exists()]
    if reports:
        (out / "sweep_report.md").write_text("\n\n".join(reports))
    (out / "verdicts.md").write_text(verdict_table(rows(sweeps, by), by))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--by", action="append", required=True, help="a row key (repeatable)")
    args = parser.parse_args(argv)
    for sweep in args.sweeps:
        if not jobs(sweep):
            parser.error(f"no completed runs under {sweep}")
    record(args.sweeps, args.out, args.by)
    print((args.out / "verdicts.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Draw a mmoe_correlation sweep: test MAE (best-validation epoch) against the task correlation.

One line per architecture, the mean over tasks and seeds with the standard deviation over seeds as
error bars (MMoE paper, Ma et al. KDD 2018, Figure 3 draws the same axes), plus a markdown table of
the per-cell means and each architecture's rise from correlation 1 to the lowest one swept.

    python experiments/mmoe_correlation_plot.py SWEEP_FOLDER OUT_FOLDER
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def cells(sweep: Path) -> dict[tuple[str, float], list[float]]:
    """Per (arch, correlation): one value per seed, the test MAE averaged over the tasks."""
    found: dict[tuple[str, float], list[float]] = defaultdict(list)
    for summary in sorted(sweep.glob("*/summary.json")):
        data = json.loads(summary.read_text())
        if data.get("status") != "completed":
            continue
        test = data["metrics"]["best"]["test"]
        mae = statistics.fmean(test[task]["mae"] for task in test)
        found[(data["run"]["arch"], float(data["dataset_info"]["correlation"]))].append(mae)
    return found


def table(found: dict[tuple[str, float], list[float]]) -> str:
    archs = sorted({arch for arch, _ in found})
    corrs = sorted({corr for _, corr in found}, reverse=True)
    lines = [
        "| arch | " + " | ".join(f"corr {c:g}" for c in corrs) + " |",
        "|---|" + "---:|" * len(corrs),
    ]
    for arch in archs:
        row = []
        for corr in corrs:
            values = found.get((arch, corr), [])
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            first = found.get((arch, corrs[0]))
            rise = f" ({100 * (statistics.fmean(values) / statistics.fmean(first) - 1):+.1f}%)" if first else ""
            row.append(f"{statistics.fmean(values):.4f} ± {std:.4f}{rise}" if values else "–")
        lines.append(f"| {arch} | " + " | ".join(row) + " |")
    seeds = sorted({len(v) for v in found.values()})
    note = (
        f"\nTest MAE at the best-validation epoch, mean of t1 and t2, mean ± std over {seeds} seeds;"
        f" in brackets the change against the same architecture at correlation {corrs[0]:g}.\n"
    )
    return "\n".join(lines) + "\n" + note


def verdicts(sweep: Path) -> str:
    """Per cell, the transfer report of the run that pooled the most seeds: Δ_t, verdict, Holm p."""
    best: dict[tuple[str, float], dict] = {}
    for path in sorted(sweep.glob("*/transfer.json")):
        data = json.loads(path.read_text())
        corr = json.loads((path.parent / "summary.json").read_text())["dataset_info"]["correlation"]
        key = (data["run"]["arch"], float(corr))
        if key not in best or len(data["seeds"]) > len(best[key]["seeds"]):
            best[key] = data
    lines = [
        "| corr | arch | seeds | t1 STL MAE | Δ_t1 (%) | t1 verdict (p Holm)"
        " | t2 STL MAE | Δ_t2 (%) | t2 verdict (p Holm) |",
        "|---:|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for (arch, corr), data in sorted(best.items(), key=lambda item: (-item[0][1], item[0][0])):
        cells_ = []
        for task in ("t1", "t2"):
            t = data["tasks"][task]
            p = t.get("p_adjusted")
            cells_ += [
                f"{t['metrics']['mae']['stl']:.4f}",
                f"{t['delta']:+.2f}",
                f"{t['verdict']} ({p:.2f})" if p is not None else t["verdict"],
            ]
        lines.append(f"| {corr:g} | {arch} | {len(data['seeds'])} | " + " | ".join(cells_) + " |")
    return "\n".join(lines) + "\n"


def draw(found: dict[tuple[str, float], list[float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for arch in sorted({arch for arch, _ in found}):
        corrs = sorted(corr for a, corr in found if a == arch)
        means = [statistics.fmean(found[(arch, c)]) for c in corrs]
        stds = [statistics.stdev(found[(arch, c)]) if len(found[(arch, c)]) > 1 else 0.0 for c in corrs]
        ax.errorbar(corrs, means, yerr=stds, marker="o", capsize=3, label=arch)
    ax.set_xlabel("task correlation (cosine of the task weight vectors)")
    ax.set_ylabel("test MAE, mean of t1 and t2")
    ax.set_title("MMoE synthetic tasks: error bars = std over seeds")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python experiments/mmoe_correlation_plot.py SWEEP_FOLDER OUT_FOLDER", file=sys.stderr)
        return 2
    sweep, out = Path(argv[0]), Path(argv[1])
    found = cells(sweep)
    if not found:
        print(f"mtlrun: error: no completed runs under {sweep}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / "mae_by_correlation.md").write_text(table(found))
    (out / "verdicts.md").write_text(verdicts(sweep))
    draw(found, out / "mae_vs_correlation.png")
    print(table(found), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

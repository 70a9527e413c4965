"""Draw pareto_front: fixed weightings across the 2-task simplex beside the balancers, task 1 against task 2.

    python experiments/pareto_front_plot.py PARETO_SWEEP BALANCERS_SWEEP[,MORE_SWEEPS] OUT_FOLDER

PARETO_SWEEP is ``mtlrun -m sweep=pareto_front``'s folder (``balancer=fixed``, ``tasks.weights.left = w``,
right weight 1: the left share of the simplex is w / (1 + w)); BALANCERS_SWEEP the
``multi_digits_balancers`` study on the same problem. Each point is a configuration's mean primary
test metric at the best-validation epoch over its seeds, with the standard deviation as error bars;
the single-task networks (the runs' baselines) are a star. The fixed weightings' front is their
non-dominated means. Writes ``pareto_front.png`` and ``pareto_front.md``: per balancer, whether its
mean is dominated by a fixed weighting's (below the front), dominates one on the front (beyond it),
or neither (on it).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from record_study import fullest_report, rows, test_metrics  # noqa: E402

Point = tuple[float, float]


def mean_std(folders: Sequence[Path], tasks: Sequence[str]) -> tuple[Point, Point]:
    values = [test_metrics(f) for f in folders]
    means = [statistics.fmean(v[t] for v in values) for t in tasks]
    stds = [statistics.stdev(v[t] for v in values) if len(values) > 1 else 0.0 for t in tasks]
    return (means[0], means[1]), (stds[0], stds[1])


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` on both tasks and better on one (both higher-is-better)."""
    return a[0] >= b[0] and a[1] >= b[1] and a != b


def front(points: Mapping[str, Point]) -> list[str]:
    """The names of the non-dominated points, ordered along task 1."""
    kept = [n for n, p in points.items() if not any(dominates(q, p) for m, q in points.items() if m != n)]
    return sorted(kept, key=lambda n: points[n][0])


def place(point: Point, fixed: Mapping[str, Point], on_front: Sequence[str]) -> str:
    below = [n for n, q in fixed.items() if dominates(q, point)]
    if below:
        return "below the front (dominated by " + ", ".join(below) + ")"
    beyond = [n for n in on_front if dominates(point, fixed[n])]
    if beyond:
        return "beyond the front (dominates " + ", ".join(beyond) + ")"
    return "on the front (neither dominated nor dominating)"


def main(argv: Sequence[str]) -> int:
    if len(argv) != 3:
        print("usage: python experiments/pareto_front_plot.py PARETO_SWEEP BALANCERS_SWEEP OUT_FOLDER", file=sys.stderr)
        return 2
    pareto, out = Path(argv[0]), Path(argv[2])
    fixed_runs = rows(pareto, ["tasks.weights.left"])
    balancer_runs = rows([Path(a) for a in argv[1].split(",")], ["balancer"])
    if not fixed_runs or not balancer_runs:
        print("pareto_front_plot: error: no completed runs in one of the sweeps", file=sys.stderr)
        return 2
    first = next(iter(fixed_runs.values()))[0]
    tasks = list(test_metrics(first))
    fixed: dict[str, Point] = {}
    fixed_std: dict[str, Point] = {}
    for (w,), folders in sorted(fixed_runs.items(), key=lambda item: float(item[0][0])):
        name = f"{float(w) / (1 + float(w)):.1f}/{1 / (1 + float(w)):.1f}"
        fixed[name], fixed_std[name] = mean_std(folders, tasks)
    methods = {key[0]: mean_std(folders, tasks) for key, folders in balancer_runs.items()}
    on_front = front(fixed)
    report = fullest_report([f for folders in balancer_runs.values() for f in folders])

    fig, ax = plt.subplots(figsize=(7, 5.5))
    xs, ys = zip(*fixed.values(), strict=True)
    ax.errorbar(
        xs,
        ys,
        xerr=[s[0] for s in fixed_std.values()],
        yerr=[s[1] for s in fixed_std.values()],
        fmt="o",
        color="0.55",
        ecolor="0.8",
        capsize=2,
        label="fixed weights (left/right share)",
    )
    for name, (x, y) in fixed.items():
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color="0.4")
    ax.plot(
        [fixed[n][0] for n in on_front],
        [fixed[n][1] for n in on_front],
        "-",
        color="0.55",
        lw=1.5,
        label="front of the fixed weights",
    )
    colours = [plt.cm.tab10(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]  # no gray: the fixed weights are gray
    for i, (name, ((x, y), (sx, sy))) in enumerate(sorted(methods.items())):
        colour = colours[i % len(colours)]
        ax.errorbar(
            [x], [y], xerr=[sx], yerr=[sy], fmt="s", color=colour, alpha=0.9, elinewidth=0.8, capsize=2, label=name
        )
    if report is not None:
        stl = [report["tasks"][t]["metrics"][test_metric_name(first, t)]["stl"] for t in tasks]
        ax.plot([stl[0]], [stl[1]], "*", color="k", markersize=14, label="single-task networks")
    ax.set_xlabel(f"{tasks[0]} test accuracy (mean over seeds)")
    ax.set_ylabel(f"{tasks[1]} test accuracy (mean over seeds)")
    ax.set_title("MultiDigits left/right: balancers against fixed weightings")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "pareto_front.png", dpi=130)

    seeds = sorted({len(f) for f in [*fixed_runs.values(), *balancer_runs.values()]})
    lines = [f"| weighting or balancer | {tasks[0]} | {tasks[1]} | place |", "|---|---:|---:|---|"]
    for name, (x, y) in fixed.items():
        lines.append(
            f"| fixed {name} | {x:.4f} ± {fixed_std[name][0]:.4f} | {y:.4f} ± {fixed_std[name][1]:.4f} | "
            + ("on the fixed weights' front" if name in on_front else "dominated by another weighting")
            + " |"
        )
    for name, ((x, y), (sx, sy)) in sorted(methods.items(), key=lambda item: -sum(item[1][0])):
        lines.append(f"| {name} | {x:.4f} ± {sx:.4f} | {y:.4f} ± {sy:.4f} | {place((x, y), fixed, on_front)} |")
    lines.append(
        f"\nPrimary test metric at the best-validation epoch, mean ± std over {seeds} seeds; the place compares "
        "means only (a difference within the error bars is not a finding).\n"
    )
    (out / "pareto_front.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def test_metric_name(job: Path, task: str) -> str:
    return json.loads((job / "summary.json").read_text())["primary"][task]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

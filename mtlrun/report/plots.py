"""Plots of one run folder: learning curves, balancer weights, gradient conflict, task affinity, Δ_t.

Every function draws one PNG from plain data (rows of ``metrics.jsonl``, the ``diagnostics.json``
dict, ...) so the report code can call them on any run. matplotlib is imported lazily and only
its Agg canvas is used (no pyplot, no display, no global state), which keeps ``import mtlrun``
fast and plotting safe in headless jobs and threads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mtlrun.results.run_folder import PLOTS, RunFolder, Summary
from mtlrun.results.transfer_report import TaskTransfer

log = logging.getLogger("mtlrun")

DPI = 120
#: bar colour per verdict of the negative-transfer report
VERDICT_COLORS = {
    "negative transfer": "#c0392b",
    "positive transfer": "#27ae60",
    "no significant difference": "#95a5a6",
}
#: every ``untested (n seeds)`` verdict
UNTESTED_COLOR = "#5d8aa8"


def verdict_color(verdict: str) -> str:
    if verdict.startswith("untested"):
        return UNTESTED_COLOR
    return VERDICT_COLORS.get(verdict, "#7f8c8d")


Rows = Iterable[Mapping[str, Any]]
StlCurves = Mapping[str, Mapping[str, Sequence[float]]]


def _figure(width: float, height: float):
    """A new figure on the Agg canvas (headless, independent of any pyplot backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # matplotlib logs category-axis notes at INFO, which would land in every run's console and log
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_path: Path) -> Path:
    from mtlrun.results.atomic import write_figure

    out_path = Path(out_path)
    write_figure(out_path, fig, "png", dpi=DPI)
    return out_path


def _series(rows: Rows, split: str, metric: str) -> dict[str, tuple[list[int], list[float]]]:
    """``{task: (epochs, values)}`` for rows with this split and metric, sorted by epoch."""
    found: dict[str, dict[int, float]] = {}
    for row in rows:
        if row.get("split") != split or row.get("metric") != metric or row.get("task") is None:
            continue
        if "checkpoint" in row:  # test rows
            continue
        value = row.get("value")
        if isinstance(value, (int, float)):
            found.setdefault(row["task"], {})[int(row["epoch"])] = float(value)
    return {task: (sorted(v), [v[e] for e in sorted(v)]) for task, v in found.items()}


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    """The rows of ``folder/metrics.jsonl`` (empty when there is none)."""
    return RunFolder(folder).read_metric_rows()


# --------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------


def plot_learning_curves(
    metrics_rows: Rows,
    primary: Mapping[str, str],
    out_path: Path,
    stl_curves: StlCurves | None = None,
    directions: Mapping[str, Mapping[str, bool]] | None = None,
) -> Path | None:
    """Per task (one row each): train loss and validation primary metric per epoch.

    ``stl_curves`` ({task: {"epoch": [...], "loss": [...], "val": [...]}}, from single-task
    baselines) are overlaid dashed as "STL". ``directions`` ({task: {metric: higher_is_better}})
    adds ↑/↓ to the metric axis. Returns None when the rows hold no training loss.
    """
    rows = list(metrics_rows)
    train = _series(rows, "train", "loss")
    tasks = [t for t in primary if t in train] or list(train)
    if not tasks:
        return None
    fig = _figure(10.0, 2.6 * len(tasks) + 0.4)
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    for k, task in enumerate(tasks):
        metric = primary.get(task)
        val = _series(rows, "val", metric)[task] if metric and task in _series(rows, "val", metric) else None
        arrow = ""
        if directions and metric in directions.get(task, {}):
            arrow = " ↑" if directions[task][metric] else " ↓"
        stl = (stl_curves or {}).get(task)
        loss_ax, val_ax = axes[k]
        loss_ax.plot(*train[task], marker="o", markersize=3, color="C0", label="MTL")
        if stl and stl.get("loss"):
            loss_ax.plot(stl["epoch"], stl["loss"], linestyle="--", marker="o", markersize=3, color="C1", label="STL")
        loss_ax.set(title=f"{task}: train loss", xlabel="epoch", ylabel="loss")
        if val is not None:
            val_ax.plot(*val, marker="o", markersize=3, color="C0", label="MTL")
        if stl and stl.get("val"):
            val_ax.plot(stl["epoch"], stl["val"], linestyle="--", marker="o", markersize=3, color="C1", label="STL")
        val_ax.set(title=f"{task}: validation {metric}{arrow}", xlabel="epoch", ylabel=f"{metric}{arrow}")
        for ax in (loss_ax, val_ax):
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
            if ax.has_data():
                ax.legend(loc="best", fontsize="small")
    fig.suptitle("Learning curves per task" + (" (dashed: single-task baseline)" if stl_curves else ""))
    return _save(fig, out_path)


def constant_weights(weights: Mapping[str, tuple[Sequence[int], Sequence[float]]]) -> bool:
    """Whether every task's weight stays the same over the epochs (ew, fixed): a flat line says nothing."""
    for _, values in weights.values():
        if values and max(values) - min(values) > 1e-9 * max(1.0, max(abs(v) for v in values)):
            return False
    return True


def plot_weights(metrics_rows: Rows, out_path: Path) -> Path | None:
    """The balancer's task weights per epoch (epoch means of ``metric == "weight"`` rows); nothing for a
    balancer whose weights never change (ew, fixed), whose plot would be flat lines."""
    weights = _series(list(metrics_rows), "train", "weight")
    if not weights or constant_weights(weights):
        return None
    fig = _figure(7.0, 4.0)
    ax = fig.subplots()
    for task, (epochs, values) in weights.items():
        ax.plot(epochs, values, marker="o", markersize=3, label=task)
    ax.set(title="Balancer task weights (mean over each epoch's steps)", xlabel="epoch", ylabel="weight")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(title="task", loc="best", fontsize="small")
    return _save(fig, out_path)


# --------------------------------------------------------------------------------------------
# Δ_t bars
# --------------------------------------------------------------------------------------------


def plot_delta_bars(
    deltas: Mapping[str, tuple[float, str]],
    out_path: Path,
    intervals: Mapping[str, tuple[float, float]] | None = None,
) -> Path | None:
    """Bars of Δ_t (% relative to the single-task baseline) per task, coloured by verdict, with the
    95% confidence interval of each Δ_t as an error bar where it is known."""
    if not deltas:
        return None
    from matplotlib.patches import Patch

    tasks = list(deltas)
    values = [float(deltas[t][0]) for t in tasks]
    verdicts = [deltas[t][1] for t in tasks]
    fig = _figure(max(6.0, 1.1 * len(tasks) + 4.0), 4.2)
    ax = fig.subplots()
    ax.bar(tasks, values, color=[verdict_color(v) for v in verdicts], edgecolor="black")
    intervals = intervals or {}
    for i, task in enumerate(tasks):
        if task in intervals:
            low, high = intervals[task]
            yerr = [[max(0.0, values[i] - low)], [max(0.0, high - values[i])]]
            ax.errorbar(i, values[i], yerr=yerr, color="black", capsize=5, lw=1.2)
    ax.axhline(0.0, color="black", linewidth=0.8)
    for i, value in enumerate(values):  # beside the error bar, not on it
        ax.annotate(
            f"{value:+.2f}",
            (i, value),
            xytext=(6, 3 if value >= 0 else -3),
            textcoords="offset points",
            ha="left",
            va="bottom" if value >= 0 else "top",
            fontsize="small",
        )
    ax.margins(y=0.2)
    ax.set(
        title="Per-task transfer Δ_t (> 0: sharing helped)",
        xlabel="task" + ("\nerror bars: 95% confidence interval over seeds" if intervals else ""),
        ylabel="Δ_t (% vs single-task)",
    )
    ax.grid(axis="y", alpha=0.3)
    present = [v for v in VERDICT_COLORS if v in verdicts] + sorted(set(verdicts) - set(VERDICT_COLORS))
    ax.legend(
        handles=[Patch(facecolor=verdict_color(v), edgecolor="black", label=v) for v in present],
        title="verdict",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
    )
    return _save(fig, out_path)


# --------------------------------------------------------------------------------------------
# Trade-off against the single-task baselines
# --------------------------------------------------------------------------------------------

#: at most this many task pairs get a panel (the first tasks' pairs)
MAX_PAIRS = 15


def _better(higher_is_better: bool) -> str:
    return "↑ better" if higher_is_better else "↓ better"


def plot_tradeoff(tasks: Mapping[str, TaskTransfer], primary: Mapping[str, str], out_path: Path) -> Path | None:
    """``tradeoff.png``: per pair of tasks, the run's primary test metrics (mean ± std over the pooled
    seeds) against the single-task point (both baselines), an arrow from one to the other, and the
    region better than the single-task point on both tasks shaded.

    ``tasks`` is the report's :attr:`~mtlrun.results.transfer_report.TransferReport.tasks`. Nothing
    for fewer than two tasks with a baseline.
    """
    from itertools import combinations

    from matplotlib.patches import Rectangle

    usable = [t for t in tasks if primary.get(t) in tasks[t].metrics]
    pairs = list(combinations(usable, 2))[:MAX_PAIRS]
    if not pairs:
        return None
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = _figure(4.4 * cols + 0.6, 3.9 * rows + 1.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (tx, ty) in zip(axes, pairs):
        mx, my = tasks[tx].metrics[primary[tx]], tasks[ty].metrics[primary[ty]]
        ax.errorbar(
            mx.stl, my.stl, xerr=mx.stl_std or 0.0, yerr=my.stl_std or 0.0,
            fmt="s", color="#555555", markersize=8, capsize=4, label="single-task baselines (STL)",
        )  # fmt: skip
        ax.errorbar(
            mx.mtl, my.mtl, xerr=mx.mtl_std or 0.0, yerr=my.mtl_std or 0.0,
            fmt="o", color="C0", markersize=8, capsize=4, label="multi-task (this configuration)",
        )  # fmt: skip
        ax.annotate(
            "",
            xy=(mx.mtl, my.mtl),
            xytext=(mx.stl, my.stl),
            arrowprops={"arrowstyle": "->", "color": "C0", "lw": 1.2, "shrinkA": 6, "shrinkB": 6},
        )
        ax.margins(0.35)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        far_x = x1 if mx.higher_is_better else x0
        far_y = y1 if my.higher_is_better else y0
        ax.add_patch(
            Rectangle(
                (mx.stl, my.stl),
                far_x - mx.stl,
                far_y - my.stl,
                color="#27ae60",
                alpha=0.12,
                linewidth=0,
                label="better than STL on both tasks",
            )
        )
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set(
            xlabel=f"{tx}: {primary[tx]} ({_better(mx.higher_is_better)})",
            ylabel=f"{ty}: {primary[ty]} ({_better(my.higher_is_better)})",
            title=f"{tx} vs {ty}",
        )
        ax.grid(alpha=0.3)
    for ax in axes[len(pairs) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3 if cols > 1 else 1, fontsize="small")
    fig.suptitle("Trade-off against the single-task baselines\n(test metrics, mean ± std over seeds)")
    return _save(fig, out_path)


# --------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------


#: the colour of a masked cell (a heatmap's diagonal)
MASKED_COLOR = "#d9d9d9"


def _heatmap(ax, matrix: Sequence[Sequence[float]], tasks: Sequence[str], limit: float, colorbar_label: str) -> None:
    """An annotated heatmap, diagonal masked (grey, no number), on the diverging RdBu scale
    symmetric about 0 (``±limit``): red is conflict or harm, blue agreement or help."""
    import numpy as np
    from matplotlib import colormaps

    data = np.array(matrix, dtype=float)
    np.fill_diagonal(data, np.nan)
    cmap = colormaps["RdBu"].with_extremes(bad=MASKED_COLOR)
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=-limit, vmax=limit)
    ax.set_xticks(range(len(tasks)), labels=tasks, rotation=30, ha="right")
    ax.set_yticks(range(len(tasks)), labels=tasks)
    small = limit < 0.1  # e.g. affinities of a few thousandths: show significant digits
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if i == j:
                continue
            value = data[i, j]
            text = f"{value:.2g}" if small else f"{value:.2f}"
            strong = abs(value) > 0.6 * limit
            ax.text(j, i, text, ha="center", va="center", fontsize="small", color="white" if strong else "black")
    ax.figure.colorbar(image, ax=ax, label=colorbar_label, shrink=0.85)


def _off_diagonal(matrix: Sequence[Sequence[float]]) -> list[float]:
    return [v for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j]


def cosine_figure(diagnostics: Mapping[str, Any]):
    """The mean task-gradient cosine as a T x T heatmap on the fixed scale [-1, 1] (diagonal masked:
    a task's cosine with itself is 1 by definition)."""
    tasks = list(diagnostics.get("tasks") or [])
    n = diagnostics.get("steps_sampled", 0)
    size = 1.1 * len(tasks) + 2.8
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    _heatmap(ax, diagnostics["cosine"]["matrix"], tasks, 1.0, "cosine similarity")
    ax.set(
        title=f"Task-gradient cosine on shared parameters\n(mean of {n} sampled steps; < 0 (red): conflict)",
        xlabel="task",
        ylabel="task",
    )
    return fig


def plot_cosine(diagnostics: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """``cosine.png`` (mean cosine of task gradients, T x T) and ``cosine_evolution.png``
    (per pair, the epoch mean over training). Nothing when the run has no cosine data."""
    cosine = diagnostics.get("cosine")
    tasks = list(diagnostics.get("tasks") or [])
    if not cosine or len(tasks) < 2:
        return []
    out_dir = Path(out_dir)
    written = [_save(cosine_figure(diagnostics), out_dir / "cosine.png")]

    by_epoch = cosine.get("by_epoch") or []
    if by_epoch:
        fig = _figure(7.5, 4.2)
        ax = fig.subplots()
        epochs = [entry["epoch"] for entry in by_epoch]
        for i in range(len(tasks)):
            for j in range(i + 1, len(tasks)):
                ax.plot(
                    epochs,
                    [entry["matrix"][i][j] for entry in by_epoch],
                    marker="o",
                    markersize=3,
                    label=f"{tasks[i]} / {tasks[j]}",
                )
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set(title="Task-gradient cosine over training (epoch means)", xlabel="epoch", ylabel="cosine similarity")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(title="task pair", loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
        written.append(_save(fig, out_dir / "cosine_evolution.png"))
    return written


def affinity_figure(diagnostics: Mapping[str, Any]):
    """The inter-task affinity Z(i→j) heatmap; the diagonal (a task's step on its own loss, which
    is plain training progress, not transfer) is masked, and the scale is symmetric about 0 over
    the off-diagonal values."""
    tasks = list(diagnostics.get("tasks") or [])
    matrix = diagnostics["affinity"]["matrix"]
    limit = max((abs(v) for v in _off_diagonal(matrix)), default=0.0) or 1e-12
    size = 1.1 * len(tasks) + 2.8
    fig = _figure(size + 1.0, size + 0.3)
    ax = fig.subplots()
    _heatmap(ax, matrix, tasks, limit, "Z(i→j) (relative loss decrease)")
    ax.set(
        title="Inter-task affinity Z(i→j) = 1 − L_j(θ after a step on i) / L_j(θ)\n"
        "> 0 (blue): a step on i lowers j's loss; diagonal (i on itself) masked",
        xlabel="target task j (loss measured)",
        ylabel="source task i (step taken)",
    )
    return fig


def plot_affinity(diagnostics: Mapping[str, Any], out_path: Path) -> Path | None:
    """``affinity.png``: the inter-task affinity matrix Z(i→j) (TAG; row: task stepped on, column: task measured)."""
    affinity = diagnostics.get("affinity")
    tasks = list(diagnostics.get("tasks") or [])
    if not affinity or not affinity.get("matrix") or len(tasks) < 2:
        return None
    return _save(affinity_figure(diagnostics), out_path)


# --------------------------------------------------------------------------------------------
# A whole run folder
# --------------------------------------------------------------------------------------------


def plot_run(folder: Path, stl_curves: StlCurves | None = None) -> list[Path]:
    """Draw into ``folder/plots/`` every plot the folder's files support; return the paths."""
    run = RunFolder(folder)
    out = run.path(PLOTS)
    written: list[Path | None] = []
    rows = run.read_metric_rows()
    summary = run.read_summary() or Summary()
    if rows:
        written.append(
            plot_learning_curves(rows, summary.primary, out / "learning_curves.png", stl_curves, summary.directions)
        )
        written.append(plot_weights(rows, out / "weights.png"))
    diagnostics = run.read_diagnostics()
    if diagnostics is not None:
        written.extend(plot_cosine(diagnostics, out))
        written.append(plot_affinity(diagnostics, out / "affinity.png"))
    return [p for p in written if p is not None]

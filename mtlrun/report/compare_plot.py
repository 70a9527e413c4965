"""The comparison as a figure: per-task primary-metric points with error bars and, for two tasks, the trade-off.

Drawn with matplotlib's Agg canvas (no display, no global pyplot state), so it works on servers.
"""

from __future__ import annotations

from pathlib import Path

from mtlrun.report.aggregate import Column, Comparison, Row


def plot_formats() -> list[str]:
    """The file suffixes the figure can be saved as (``.png``, ``.pdf``, ``.svg``, ...)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return [f".{name}" for name in FigureCanvasAgg.get_supported_filetypes()]


def _axis_label(column: Column) -> str:
    return f"{column.task} {column.metric} ({'higher' if column.higher_is_better else 'lower'} is better)"


def _front(rows: list[Row], x: Column, y: Column) -> list[tuple[float, float]]:
    return sorted((r.metrics[x.name].mean, r.metrics[y.name].mean) for r in rows if r.pareto)


def single_task_points(rows: list[Row], x: Column, y: Column) -> list[tuple[float, float]]:
    """The distinct single-task points (both tasks' STL values from the runs' reports) of the rows."""
    points = set()
    for row in rows:
        for run in row.completed:
            sx, sy = run.stl.get(x.task, {}).get(x.metric), run.stl.get(y.task, {}).get(y.metric)
            if sx is not None and sy is not None:
                points.add((round(sx, 12), round(sy, 12)))
    return sorted(points)


def plot_comparison(comparison: Comparison, path: Path) -> bool:
    """Write the figure to ``path``; False when no row has results to draw.

    Each task's primary metric is drawn as points with error bars (mean ± std over seeds) on an axis
    fitted to the values, so differences between configurations stay visible (bars from zero would
    flatten them); configurations are labelled by their settings, Pareto-optimal ones as filled
    diamonds, and legends sit outside the data. The two-task trade-off also shows the single-task
    point (both baselines, from the runs' ``transfer.json``) where the runs have reports.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    columns = [c for c in comparison.columns if c.primary]
    rows = [r for r in comparison.rows if r.metrics]
    if not rows or not columns:
        return False
    scatter = len(columns) == 2 and any(all(c.name in r.metrics for c in columns) for r in rows)
    panels = len(columns) + int(scatter)
    names = [r.title() for r in rows]
    label_room = 0.09 * max(len(n) for n in names)  # rotated configuration labels under the axes
    figure = Figure(figsize=(max(4.2 * panels + 3.0, 7.0), 4.2 + label_room), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(rows))]
    for ax, column in zip(axes, columns):
        for i, row in enumerate(rows):
            stat = row.metrics.get(column.name)
            if stat is None:
                continue
            ax.errorbar(
                i,
                stat.mean,
                yerr=stat.std or 0.0,
                fmt="D" if row.pareto else "o",
                color=colours[i],
                markersize=8 if row.pareto else 6,
                capsize=4,
            )
        ax.set_title(f"{column.task}: {column.metric} (test, mean ± std)")
        ax.set_ylabel(_axis_label(column))
        ax.set_xticks(range(len(rows)), names, rotation=35, ha="right", fontsize="small")
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    if scatter:
        x, y = columns
        ax = axes[-1]
        for i, row in enumerate(rows):
            if x.name not in row.metrics or y.name not in row.metrics:
                continue
            sx, sy = row.metrics[x.name], row.metrics[y.name]
            ax.errorbar(
                sx.mean,
                sy.mean,
                xerr=sx.std or 0.0,
                yerr=sy.std or 0.0,
                fmt="D" if row.pareto else "o",
                color=colours[i],
                capsize=3,
                markersize=8 if row.pareto else 6,
            )
        single = single_task_points(rows, x, y)
        for base_x, base_y in single:
            ax.plot(base_x, base_y, "s", color="#555555", markersize=9, zorder=4)
        front = _front([r for r in rows if x.name in r.metrics and y.name in r.metrics], x, y)
        if front:
            ax.plot([p[0] for p in front], [p[1] for p in front], "k--", linewidth=1)
        ax.set_title(f"trade-off: {x.task} vs {y.task}")
        ax.set_xlabel(_axis_label(x))
        ax.set_ylabel(_axis_label(y))
        ax.margins(0.15)
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], marker="D" if r.pareto else "o", color=colours[i], linestyle="", label=names[i])
        for i, r in enumerate(rows)
    ]
    if scatter:
        handles.append(Line2D([], [], color="black", linestyle="--", label="Pareto front"))
        if single_task_points(rows, *columns):
            handles.append(
                Line2D([], [], marker="s", color="#555555", linestyle="", label="single-task baselines (STL)")
            )
    figure.legend(
        handles=handles,
        title="configuration (◆ Pareto-optimal)",
        loc="outside right upper",
        fontsize="small",
    )
    figure.suptitle(f"{len(rows)} configurations, {sum(len(r.completed) for r in rows)} completed runs")
    from mtlrun.results.atomic import write_figure

    # the suffix picks the format; a path without one is written as PNG under exactly that name
    write_figure(path, figure, path.suffix.lower().lstrip(".") or "png", dpi=110)
    return True

"""The comparison as a figure: per-task primary-metric bars and, for two tasks, the trade-off plot.

Drawn with matplotlib's Agg canvas (no display, no global pyplot state), so it works on servers.
"""

from __future__ import annotations

from pathlib import Path

from mtlrun.report.aggregate import Column, Comparison, Row


def _axis_label(column: Column) -> str:
    return f"{column.task} {column.metric} ({'higher' if column.higher_is_better else 'lower'} is better)"


def _front(rows: list[Row], x: Column, y: Column) -> list[tuple[float, float]]:
    return sorted((r.metrics[x.name].mean, r.metrics[y.name].mean) for r in rows if r.pareto)


def plot_comparison(comparison: Comparison, path: Path) -> bool:
    """Write the figure to ``path``; False when no row has results to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = [c for c in comparison.columns if c.primary]
    rows = [r for r in comparison.rows if r.metrics]
    if not rows or not columns:
        return False
    scatter = len(columns) == 2 and any(all(c.name in r.metrics for c in columns) for r in rows)
    panels = len(columns) + int(scatter)
    figure = Figure(figsize=(max(4.5 * panels, 6.0), 4.5 + 0.15 * len(rows)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(rows))]
    names = [r.title() for r in rows]
    for ax, column in zip(axes, columns):
        for i, row in enumerate(rows):
            stat = row.metrics.get(column.name)
            if stat is None:
                continue
            ax.bar(
                i,
                stat.mean,
                yerr=stat.std or 0.0,
                color=colours[i],
                capsize=4,
                edgecolor="black" if row.pareto else colours[i],
                linewidth=1.5 if row.pareto else 0.5,
                label=names[i],
            )
        ax.set_title(f"{column.task}: {column.metric} (test, mean ± std)")
        ax.set_xlabel("configuration")
        ax.set_ylabel(_axis_label(column))
        ax.set_xticks(range(len(rows)), [str(r.rank or "—") for r in rows])
    axes[0].legend(title="configuration (tick = rank; outlined = Pareto)", fontsize="small", loc="best")
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
                fmt="o",
                color=colours[i],
                capsize=3,
                markersize=8 if row.pareto else 6,
                label=names[i],
            )
        front = _front([r for r in rows if x.name in r.metrics and y.name in r.metrics], x, y)
        if front:
            ax.plot(
                [p[0] for p in front],
                [p[1] for p in front],
                "k--",
                linewidth=1,
                marker="s",
                markersize=13,
                fillstyle="none",
                label="Pareto front",
            )
        ax.set_title(f"trade-off: {x.task} vs {y.task}")
        ax.set_xlabel(_axis_label(x))
        ax.set_ylabel(_axis_label(y))
        ax.legend(fontsize="small", loc="best")
    figure.suptitle(f"{len(rows)} configurations, {sum(len(r.completed) for r in rows)} completed runs")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return True

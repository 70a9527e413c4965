"""Plots of a run folder: every function writes a valid PNG from plain data, or nothing without data."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from mtlrun.report import plots
from mtlrun.results.transfer_report import MetricTransfer, TaskTransfer
from tests.conftest import TINY

#: end-to-end runs without the single-task baselines of the transfer report (not under test here)
FAST = [*TINY, "report.baselines=false"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASKS = ["left", "sum"]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, after checking its signature and header chunk."""
    content = Path(path).read_bytes()
    assert content.startswith(PNG_SIGNATURE), path
    assert content[12:16] == b"IHDR"
    assert len(content) > 5000, f"{path} is suspiciously small ({len(content)} bytes)"
    return struct.unpack(">II", content[16:24])


def metric_rows(epochs: int = 3) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        base = {"epoch": e, "step": 10 * e}
        for k, task in enumerate(TASKS):
            rows.append({**base, "split": "train", "task": task, "metric": "loss", "value": 2.0 / e + k})
            rows.append({**base, "split": "train", "task": task, "metric": "weight", "value": 1.0 + 0.1 * k * e})
            rows.append({**base, "split": "val", "task": task, "metric": "loss", "value": 2.5 / e + k})
        rows.append({**base, "split": "val", "task": "left", "metric": "accuracy", "value": 0.3 + 0.1 * e})
        rows.append({**base, "split": "val", "task": "sum", "metric": "mae", "value": 3.0 - 0.5 * e})
    rows.append(
        {"epoch": epochs, "split": "test", "checkpoint": "last", "task": "left", "metric": "accuracy", "value": 0.9}
    )
    return rows


PRIMARY = {"left": "accuracy", "sum": "mae"}
DIRECTIONS = {"left": {"accuracy": True}, "sum": {"mae": False}}


def diagnostics(tasks=("a", "b", "c")) -> dict:
    t = list(tasks)
    return {
        "tasks": t,
        "every": 5,
        "steps_sampled": 4,
        "cosine": {
            "matrix": [[1.0, 0.3, -0.4], [0.3, 1.0, 0.1], [-0.4, 0.1, 1.0]],
            "pairs": {},
            "by_epoch": [
                {"epoch": 1, "matrix": [[1.0, 0.5, -0.2], [0.5, 1.0, 0.0], [-0.2, 0.0, 1.0]]},
                {"epoch": 2, "matrix": [[1.0, 0.1, -0.6], [0.1, 1.0, 0.2], [-0.6, 0.2, 1.0]]},
            ],
        },
        "grad_norm": {"mean": {}, "ratio_to_mean": {}, "pair_ratio": {}},
        "affinity": {
            "matrix": [[0.01, 0.002, -0.003], [0.004, 0.02, 0.0], [-0.001, 0.001, 0.03]],
            "by_epoch": [],
        },
        "overhead_s": 0.1,
    }


def test_learning_curves_with_and_without_stl(tmp_path):
    rows = metric_rows()
    alone = plots.plot_learning_curves(rows, PRIMARY, tmp_path / "mtl.png", directions=DIRECTIONS)
    stl = {t: {"epoch": [1, 2, 3], "loss": [2.2, 1.5, 1.2], "val": [0.2, 0.3, 0.45]} for t in TASKS}
    overlaid = plots.plot_learning_curves(rows, PRIMARY, tmp_path / "stl.png", stl_curves=stl)
    width, height = png_size(alone)
    assert width > 800 and height > 500  # two columns, one row per task
    png_size(overlaid)
    assert alone.read_bytes() != overlaid.read_bytes()


def test_learning_curves_need_training_losses(tmp_path):
    rows = [r for r in metric_rows() if r["split"] != "train"]
    assert plots.plot_learning_curves(rows, PRIMARY, tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()


def test_weights(tmp_path):
    png_size(plots.plot_weights(metric_rows(), tmp_path / "w.png"))
    no_weights = [r for r in metric_rows() if r["metric"] != "weight"]
    assert plots.plot_weights(no_weights, tmp_path / "none.png") is None


def test_delta_bars_colour_by_verdict(tmp_path):
    deltas = {
        "left": (-3.2, "negative transfer"),
        "right": (4.1, "positive transfer"),
        "sum": (0.3, "no significant difference"),
        "parity": (-0.8, "untested (2 seeds)"),
    }
    path = plots.plot_delta_bars(deltas, tmp_path / "delta.png")
    png_size(path)
    assert plots.plot_delta_bars({}, tmp_path / "empty.png") is None
    import matplotlib.image
    import numpy as np

    pixels = (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int).reshape(-1, 3)
    for verdict in ("negative transfer", "positive transfer", "no significant difference", "untested (2 seeds)"):
        colour = plots.verdict_color(verdict)
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        painted = int((np.abs(pixels - rgb).sum(axis=1) <= 3).sum())
        assert painted > 200, f"no bar painted in the colour of {verdict!r}"
    for absent in ("positive transfer",):  # a chart without that verdict does not use its colour
        only = plots.plot_delta_bars({"left": (-3.2, "negative transfer")}, tmp_path / "one.png")
        px = (matplotlib.image.imread(only)[..., :3] * 255).round().astype(int).reshape(-1, 3)
        rgb = np.array([int(plots.VERDICT_COLORS[absent][i : i + 2], 16) for i in (1, 3, 5)])
        assert int((np.abs(px - rgb).sum(axis=1) <= 3).sum()) == 0


def test_delta_bars_draw_the_confidence_intervals(tmp_path):
    import matplotlib.image

    deltas = {"left": (1.0, "no significant difference"), "right": (2.0, "no significant difference")}
    bare = plots.plot_delta_bars(deltas, tmp_path / "bare.png", {"left": (1.0, 1.0), "right": (2.0, 2.0)})
    wide = plots.plot_delta_bars(deltas, tmp_path / "ci.png", {"left": (-15.0, 20.0), "right": (2.0, 2.0)})

    def dark(path):
        pixels = (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int).reshape(-1, 3)
        return int((pixels.sum(axis=1) < 60).sum())

    assert dark(wide) > dark(bare) + 100  # the long black error bar of "left"


def test_cosine_heatmap_and_evolution(tmp_path):
    written = plots.plot_cosine(diagnostics(), tmp_path)
    assert [p.name for p in written] == ["cosine.png", "cosine_evolution.png"]
    for path in written:
        png_size(path)


def test_affinity_heatmap(tmp_path):
    png_size(plots.plot_affinity(diagnostics(), tmp_path / "affinity.png"))


def test_diagnostics_plots_skip_what_is_missing(tmp_path):
    empty = {**diagnostics(), "cosine": None, "affinity": None, "reason": "arch=single_task has no shared parameters"}
    assert plots.plot_cosine(empty, tmp_path) == []
    assert plots.plot_affinity(empty, tmp_path / "a.png") is None
    one_task = {**diagnostics(("a",)), "cosine": {"matrix": [[1.0]], "pairs": {}, "by_epoch": []}}
    assert plots.plot_cosine(one_task, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def write_folder(folder: Path, with_diagnostics: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metric_rows()))
    (folder / "summary.json").write_text(json.dumps({"primary": PRIMARY, "directions": DIRECTIONS}))
    if with_diagnostics:
        (folder / "diagnostics.json").write_text(json.dumps(diagnostics()))


@pytest.mark.parametrize("with_diagnostics", [True, False])
def test_plot_run_draws_what_the_folder_supports(tmp_path, with_diagnostics):
    write_folder(tmp_path, with_diagnostics)
    written = plots.plot_run(tmp_path)
    expected = {"learning_curves.png", "weights.png"}
    if with_diagnostics:
        expected |= {"cosine.png", "cosine_evolution.png", "affinity.png"}
    assert {p.name for p in written} == expected
    assert all(p.parent == tmp_path / "plots" for p in written)
    for path in written:
        png_size(path)


def test_plot_run_on_an_empty_folder_draws_nothing(tmp_path):
    assert plots.plot_run(tmp_path) == []


def test_a_plotting_failure_never_fails_the_run(cli, monkeypatch):
    def broken(folder):
        raise RuntimeError("no canvas today")

    monkeypatch.setattr(plots, "plot_run", broken)
    result = cli(*FAST, "diagnostics.every=0")
    assert result.code == 0, result.err
    assert result.summary()["status"] == "completed"
    log = (result.run_dirs()[-1] / "run.log").read_text()
    assert "could not draw plots" in log and "no canvas today" in log


def pixel(fig, ax, x: float, y: float) -> tuple[int, int, int]:
    """The RGB colour of the figure at data point (x, y) of ``ax``."""
    import numpy as np

    fig.canvas.draw()
    buffer = np.asarray(fig.canvas.buffer_rgba())
    px, py = ax.transData.transform((x, y))
    return tuple(int(v) for v in buffer[int(round(buffer.shape[0] - py)), int(round(px)), :3])


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_cosine_heatmap_masks_its_diagonal_on_a_fixed_diverging_scale():
    fig = plots.cosine_figure(diagnostics())
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.get_clim() == (-1.0, 1.0) and image.get_cmap().name.startswith("RdBu")
    assert pixel(fig, ax, 0, 0) == hex_rgb(plots.MASKED_COLOR)  # (a, a): masked
    off = pixel(fig, ax, 2, 0)  # (a, c) = -0.4: conflict, red side
    assert off != hex_rgb(plots.MASKED_COLOR) and off[0] > off[2]
    assert all(text.get_text() != "1.00" for text in ax.texts)  # no number on the diagonal


def test_affinity_masks_self_affinity_and_scales_to_the_off_diagonal():
    fig = plots.affinity_figure(diagnostics())
    ax = fig.axes[0]
    assert ax.images[0].get_clim() == (-0.004, 0.004)  # the diagonal's 0.03 does not set the scale
    assert pixel(fig, ax, 1, 1) == hex_rgb(plots.MASKED_COLOR)
    assert "masked" in ax.get_title()


def test_no_weights_plot_for_constant_weights(tmp_path):
    rows = [{**r, "value": 1.0 + 0.5 * (r["task"] == "sum")} if r["metric"] == "weight" else r for r in metric_rows()]
    assert plots.plot_weights(rows, tmp_path / "w.png") is None
    assert not (tmp_path / "w.png").exists()


TRANSFER_TASKS = {
    task: TaskTransfer(metrics={name: MetricTransfer(**values) for name, values in metrics.items()})
    for task, metrics in {
        "left": {"accuracy": {"mtl": 0.62, "mtl_std": 0.02, "stl": 0.66, "stl_std": 0.01, "higher_is_better": True}},
        "sum": {"mae": {"mtl": 1.1, "mtl_std": 0.05, "stl": 1.25, "stl_std": 0.04, "higher_is_better": False}},
        "parity": {"accuracy": {"mtl": 0.8, "mtl_std": None, "stl": 0.8, "stl_std": None, "higher_is_better": True}},
    }.items()
}
TRANSFER_PRIMARY = {"left": "accuracy", "sum": "mae", "parity": "accuracy"}


def test_tradeoff_plot_for_two_or_more_tasks(tmp_path):
    two = plots.plot_tradeoff({t: TRANSFER_TASKS[t] for t in ("left", "sum")}, TRANSFER_PRIMARY, tmp_path / "2.png")
    three = plots.plot_tradeoff(TRANSFER_TASKS, TRANSFER_PRIMARY, tmp_path / "3.png")
    assert png_size(three)[0] > png_size(two)[0]  # one panel per pair
    assert plots.plot_tradeoff({"left": TRANSFER_TASKS["left"]}, TRANSFER_PRIMARY, tmp_path / "1.png") is None
    assert not (tmp_path / "1.png").exists()

"""toy_conflict: every mtlrun balancer on the two-objective toy problem of CAGrad (Liu et al. 2021).

The problem is the one of CAGrad's ``toy.py`` (class ``Toy``), reused unchanged by Nash-MTL (Navon et
al. 2022, ``experiments/toy/problem.py``) and FAMO (Liu et al. 2023): two losses of two parameters
whose gradients conflict, with a Pareto set close to the segment ``x1 in [-7, 7]``, ``x2 = -8.3552``.
Each balancer optimises it from the papers' starting points with Adam, through the plain-loop API
(``balancer.backward(losses, shared_params=...)``, the code path the trainer uses); the run draws the
trajectories on the loss contours (parameter space) and on the losses' plane (loss space, the Pareto
front in gray) and records where each ended.

    python experiments/toy_conflict.py                       # the preset: experiments/toy_conflict.yaml
    python experiments/toy_conflict.py steps=2000 balancers=[ew,mgda,cagrad] out=/tmp/toy

Settings are ``key=value`` overrides of the YAML's keys; a wrong key or value is one line and exit 2.
"""

from __future__ import annotations

import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from preset_overrides import merged_preset
from torch import Tensor, nn

from mtlrun.balancers import BALANCERS
from mtlrun.errors import CONFIG_EXIT, ConfigError
from mtlrun.results.atomic import write_json, write_jsonl, write_text

HERE = Path(__file__).resolve().parent
PRESET = HERE / "toy_conflict.yaml"
TASKS = ("f1", "f2")
#: the floor of the logarithms' arguments in CAGrad's ``toy.py`` (``LOWER``)
LOWER = 5e-6
#: the height of the Pareto set as CAGrad, Nash-MTL and FAMO draw it (a line at x2 = -8.3552, x1 in [-7, 7])
PARETO_X2 = -8.3552


def toy_losses(x: Tensor) -> tuple[Tensor, Tensor]:
    """CAGrad's ``Toy.forward`` at ``x = (x1, x2)`` (any leading batch shape): ``(f1, f2)``.

    Above ``x2 = 0`` each loss is a logarithmic valley (``f1`` along ``x1 = -7 + 2 tanh(x2)``, ``f2``
    along ``x1 = 7 - 2 tanh(x2)``); below it a bowl centred at ``x1 = 7`` (``f1``) or ``x1 = -7``
    (``f2``), the two blended by ``c1 = max(tanh(x2/2), 0)`` and ``c2 = max(tanh(-x2/2), 0)``.
    The problem is mirror-symmetric: ``f2(x1, x2) = f1(-x1, x2)``.
    """
    x1, x2 = x[..., 0], x[..., 1]
    v1 = torch.clamp((0.5 * (-x1 - 7) - torch.tanh(-x2)).abs(), LOWER).log() + 6
    v2 = torch.clamp((0.5 * (-x1 + 3) + torch.tanh(-x2) + 2).abs(), LOWER).log() + 6
    c1 = torch.clamp(torch.tanh(x2 * 0.5), 0)
    q1 = ((-x1 + 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
    q2 = ((-x1 - 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
    c2 = torch.clamp(torch.tanh(-x2 * 0.5), 0)
    return v1 * c1 + q1 * c2, v2 * c1 + q2 * c2


class Toy(nn.Module):
    """The two parameters as one shared leaf; ``forward()`` returns ``{"f1": ..., "f2": ...}``."""

    def __init__(self, start: Sequence[float]) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.tensor([float(v) for v in start], dtype=torch.float64))

    def forward(self, *_: Any) -> dict[str, Tensor]:
        f1, f2 = toy_losses(self.x)
        return {"f1": f1, "f2": f2}


@dataclass
class Settings:
    """The preset's keys (``experiments/toy_conflict.yaml``)."""

    steps: int
    lr: float
    record_every: int
    inits: list[list[float]]
    balancers: list[str]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: str = "experiments/results/toy_conflict"
    seed: int = 0
    reuse: bool = False


def load_settings(overrides: Sequence[str] = (), preset: Path = PRESET) -> Settings:
    """The preset with ``key=value`` overrides, checked: one ``ConfigError`` line for a wrong key or value."""
    raw = merged_preset(preset, overrides, [f.name for f in Settings.__dataclass_fields__.values()])
    names = raw.get("balancers")
    if names == "all":
        names = registered_balancers()
    if not isinstance(names, list) or not names:
        raise ConfigError(f"balancers={names!r} must be 'all' or a non-empty list of {', '.join(BALANCERS.names())}")
    for name in names:
        if name not in BALANCERS:
            raise ConfigError(f"balancers: unknown balancer '{name}'; choices: {', '.join(BALANCERS.names())}")
    for key in ("steps", "record_every", "seed"):
        if (
            not isinstance(raw.get(key), int)
            or isinstance(raw.get(key), bool)
            or raw[key] < (0 if key == "seed" else 1)
        ):
            raise ConfigError(f"{key}={raw.get(key)!r} must be an integer >= {0 if key == 'seed' else 1}")
    if not isinstance(raw.get("lr"), (int, float)) or not raw["lr"] > 0:
        raise ConfigError(f"lr={raw.get('lr')!r} must be a number > 0")
    inits = raw.get("inits")
    if (
        not isinstance(inits, list)
        or not inits
        or any(not isinstance(p, list) or len(p) != 2 or not all(isinstance(v, (int, float)) for v in p) for p in inits)
    ):
        raise ConfigError(f"inits={inits!r} must be a non-empty list of [x1, x2] pairs")
    options = raw.get("options") or {}
    for name in options:
        if name not in BALANCERS:
            raise ConfigError(f"options: unknown balancer '{name}'; choices: {', '.join(BALANCERS.names())}")
    return Settings(
        steps=raw["steps"],
        lr=float(raw["lr"]),
        record_every=raw["record_every"],
        inits=[[float(v) for v in p] for p in inits],
        balancers=list(names),
        options={k: dict(v or {}) for k, v in options.items()},
        out=str(raw.get("out")),
        seed=int(raw["seed"]),
        reuse=_flag(raw.get("reuse", False), "reuse"),
    )


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false")
    return value


def recorded(settings: Settings) -> tuple[dict[str, list[Path2D]], dict[str, float]]:
    """The trajectories ``out`` already holds that the same settings would draw again.

    The optimisation is deterministic (float64, one thread's order of operations), so a balancer
    recorded with the same steps, lr, record_every, starts, seed and options ends where it ended;
    ``reuse=true`` keeps those and optimises only the balancers that are new or whose settings
    changed. The points come back at the 4 decimals the record keeps.
    """
    folder = Path(settings.out)
    summary_path, rows_path = folder / "summary.json", folder / "trajectories.jsonl"
    if not (summary_path.exists() and rows_path.exists()):
        return {}, {}
    summary = json.loads(summary_path.read_text())
    before = summary["settings"]
    same = all(before.get(k) == getattr(settings, k) for k in ("steps", "lr", "record_every", "inits", "seed"))
    if not same:
        return {}, {}
    paths: dict[str, list[Path2D]] = {}
    for line in rows_path.read_text().splitlines():
        row = json.loads(line)
        paths.setdefault(row["balancer"], []).append(Path2D(row["points"], row["losses"], row["failed"]))
    kept = {
        name: runs
        for name, runs in paths.items()
        if name in settings.balancers
        and name in summary["balancers"]
        and summary["balancers"][name]["options"] == settings.options.get(name, {})
        and [r.points[0] for r in runs] == settings.inits
    }
    return kept, {name: float(summary["balancers"][name]["seconds"]) for name in kept}


def registered_balancers() -> list[str]:
    """Every balancer mtlrun registers (``balancer=NAME``'s choices), in name order."""
    return BALANCERS.names()


def build_balancer(name: str, options: Mapping[str, Any]) -> nn.Module:
    """``balancer=NAME`` with its defaults and ``options``, checked as the command checks them."""
    return BALANCERS.build(name, dict(options), tasks=list(TASKS))


@dataclass
class Path2D:
    """One trajectory: the points every ``record_every`` steps (the start first, the end last)."""

    points: list[list[float]]
    losses: list[list[float]]
    failed: str | None = None


def optimise(
    name: str, options: Mapping[str, Any], start: Sequence[float], steps: int, lr: float, record_every: int, seed: int
) -> Path2D:
    """``steps`` Adam steps from ``start`` with the balancer's update; stops at the first non-finite value."""
    torch.manual_seed(seed)
    model = Toy(start)
    balancer = build_balancer(name, options).to(torch.float64)
    optimizer = torch.optim.Adam([*model.parameters(), *balancer.parameters()], lr=lr)
    dummy = torch.zeros(1, dtype=torch.float64)  # the toy has no data: every "batch" is this one

    def functional_losses(params: Mapping[str, Tensor], batch: Any) -> dict[str, Tensor]:
        return torch.func.functional_call(model, dict(params), (batch,))

    extra = [dummy] * (getattr(balancer, "batches_per_step", 1) - 1)
    points, losses = [list(map(float, model.x.detach()))], []
    for step in range(steps):
        optimizer.zero_grad()
        out = model()
        losses_now = [float(out[t].detach()) for t in TASKS]
        if step % record_every == 0:
            losses.append(losses_now)
        balancer.backward(
            out,
            shared_params=[model.x],
            task_params={t: [] for t in TASKS},
            model=model,
            step=step,
            epoch=1 + step // 100,  # the toy has no epochs: one per 100 steps (dwa and stch read it)
            lr=lr,
            batch=dummy,
            extra_batches=extra,
            compute_losses=lambda _batch: model(),
            validation_batch=lambda: dummy,
            functional_losses=functional_losses,
        )
        grad = model.x.grad
        if grad is None or not bool(torch.isfinite(grad).all()):
            return Path2D(points, losses, failed=f"non-finite update at step {step}")
        optimizer.step()
        if (step + 1) % record_every == 0 or step + 1 == steps:
            x = model.x.detach()
            if not bool(torch.isfinite(x).all()):
                return Path2D(points, losses, failed=f"non-finite parameters after step {step}")
            points.append(list(map(float, x)))
    losses.append([float(v) for v in toy_losses(model.x.detach())])
    return Path2D(points, losses)


def optimise_or_record(
    name: str, options: Mapping[str, Any], start: Sequence[float], steps: int, lr: float, record_every: int, seed: int
) -> Path2D:
    """:func:`optimise`, with an error inside the balancer recorded as that run's failure (the others go on)."""
    try:
        return optimise(name, options, start, steps, lr, record_every, seed)
    except Exception as ex:  # recorded in the table and the picture, not hidden
        first = str(ex).splitlines()[0] if str(ex) else ""
        return Path2D(
            [list(start)],
            [[float(v) for v in toy_losses(torch.tensor(start, dtype=torch.float64))]],
            failed=f"{type(ex).__name__}: {first}"[:120],
        )


def pareto_distance(point: Sequence[float]) -> float:
    """Euclidean distance from ``point`` to the papers' Pareto set (the segment x1 in [-7, 7], x2 = -8.3552)."""
    x1, x2 = point
    dx = max(abs(x1) - 7.0, 0.0)
    return math.hypot(dx, x2 - PARETO_X2)


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid of ``n`` panels (at most 6 columns)."""
    cols = min(6, max(1, math.ceil(math.sqrt(n))))
    return math.ceil(n / cols), cols


def draw(paths: Mapping[str, list[Path2D]], inits: Sequence[Sequence[float]], folder: Path) -> list[Path]:
    """``params.png`` (trajectories on the contours of (f1 + f2) / 2, the Pareto set in gray) and
    ``losses.png`` (trajectories in the (f1, f2) plane, the Pareto front in gray): one panel per balancer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    grid = np.linspace(-10, 10, 301)
    xs, ys = np.meshgrid(grid, grid)
    with torch.no_grad():
        g1, g2 = toy_losses(torch.from_numpy(np.stack([xs, ys], axis=-1)))
    mean = ((g1 + g2) / 2).numpy()
    levels = np.unique(np.quantile(mean, np.linspace(0, 1, 28)))  # equal areas: both halves' shapes show
    front_x = torch.stack(
        [torch.linspace(-7, 7, 201, dtype=torch.float64), torch.full((201,), PARETO_X2, dtype=torch.float64)], dim=-1
    )
    with torch.no_grad():
        p1, p2 = (v.numpy() for v in toy_losses(front_x))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"]
    rows, cols = grid_shape(len(paths))
    written = []
    for kind in ("params", "losses"):
        fig = Figure(figsize=(3.0 * cols, 2.8 * rows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.flat[len(paths) :]:
            ax.set_axis_off()
        for ax, (name, runs) in zip(axes.flat, paths.items()):
            if kind == "params":
                ax.contourf(xs, ys, mean, levels=levels, cmap="Greys_r", alpha=0.55)
                ax.contour(xs, ys, mean, levels=levels, colors="k", linewidths=0.2, alpha=0.5)
                ax.plot([-7, 7], [PARETO_X2, PARETO_X2], color="0.45", lw=3, solid_capstyle="butt")
                ax.set_xlim(-10, 10)
                ax.set_ylim(-10, 10)
            else:
                ax.plot(p1, p2, color="0.55", lw=3)
                ax.set_xlim(-22, 10)
                ax.set_ylim(-22, 10)
            failed = []
            for i, run in enumerate(runs):
                color = colors[i % len(colors)]
                data = np.asarray(run.points if kind == "params" else run.losses)
                ax.plot(data[:, 0], data[:, 1], color=color, lw=1.2)
                ax.plot(*data[0], "o", color=color, ms=4)
                ax.plot(*data[-1], "*", color=color, ms=8, mec="k", mew=0.4)
                if run.failed:
                    failed.append(f"start {i + 1}: {run.failed}")
            ax.set_title(name, fontsize=10)
            ax.tick_params(labelsize=6)
            if failed:
                ax.text(0.02, 0.02, "\n".join(failed), transform=ax.transAxes, fontsize=5, color="tab:red")
        label = ("x1", "x2") if kind == "params" else ("f1", "f2")
        fig.supxlabel(label[0])
        fig.supylabel(label[1])
        handles = [
            Line2D([], [], color=colors[i % len(colors)], marker="o", label=f"({a:g}, {b:g})")
            for i, (a, b) in enumerate(inits)
        ]
        fig.legend(handles=handles, title="start", loc="outside right upper", fontsize=7, title_fontsize=8)
        space = "parameter space, contours of (f1 + f2) / 2" if kind == "params" else "loss space"
        fig.suptitle(f"toy_conflict ({space}): o start, * end, gray: the Pareto set", fontsize=10)
        path = folder / f"{kind}.png"
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, dpi=110, format="png")
        tmp.replace(path)
        written.append(path)
    return written


def summarise(settings: Settings, paths: Mapping[str, list[Path2D]], seconds: Mapping[str, float]) -> dict[str, Any]:
    """Where each balancer ended from each start, its distance to the Pareto set and its time."""
    rows = {}
    for name, runs in paths.items():
        rows[name] = {
            "seconds": round(seconds[name], 2),
            "options": settings.options.get(name, {}),
            "runs": [
                {
                    "start": init,
                    "end": [round(v, 4) for v in run.points[-1]],
                    "losses": [round(v, 4) for v in run.losses[-1]],
                    "pareto_distance": round(pareto_distance(run.points[-1]), 4),
                    "failed": run.failed,
                }
                for init, run in zip(settings.inits, runs)
            ],
        }
    return rows


def trajectory_rows(paths: Mapping[str, list[Path2D]], inits: Sequence[Sequence[float]]) -> list[dict[str, Any]]:
    """One row per balancer and start: the recorded points and losses (4 decimals) and any failure."""
    return [
        {
            "balancer": name,
            "start": list(init),
            "points": [[round(v, 4) for v in p] for p in run.points],
            "losses": [[round(v, 4) for v in p] for p in run.losses],
            "failed": run.failed,
        }
        for name, runs in paths.items()
        for init, run in zip(inits, runs)
    ]


def table(rows: Mapping[str, Any], inits: Sequence[Sequence[float]], tolerance: float = 0.1) -> str:
    """The markdown table: per balancer and start, the end point and its distance to the Pareto set."""
    head = "| balancer | " + " | ".join(f"from ({a:g}, {b:g})" for a, b in inits) + " | on the set | s |"
    lines = [head, "|---|" + "---|" * len(inits) + "---:|---:|"]
    for name, row in rows.items():
        cells, on = [], 0
        for run in row["runs"]:
            if run["failed"]:
                cells.append(run["failed"])
                continue
            x1, x2 = run["end"]
            d = run["pareto_distance"]
            on += d <= tolerance
            cells.append(f"({x1:.2f}, {x2:.2f}) d={d:.2f}")
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {on}/{len(row['runs'])} | {row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def run(settings: Settings, command: str) -> Path:
    """Optimise with every chosen balancer from every start; write the pictures and the records."""
    folder = Path(settings.out)
    folder.mkdir(parents=True, exist_ok=True)
    kept, kept_seconds = recorded(settings) if settings.reuse else ({}, {})
    paths: dict[str, list[Path2D]] = {}
    seconds: dict[str, float] = {}
    begin = time.perf_counter()
    for name in settings.balancers:
        if name in kept:
            paths[name], seconds[name] = kept[name], kept_seconds[name]
            continue
        start = time.perf_counter()
        options = settings.options.get(name, {})
        paths[name] = [
            optimise_or_record(name, options, init, settings.steps, settings.lr, settings.record_every, settings.seed)
            for init in settings.inits
        ]
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
    total = time.perf_counter() - begin + sum(kept_seconds.values())
    rows = summarise(settings, paths, seconds)
    new = [name for name in settings.balancers if name not in kept]
    reused = (
        f" ({len(kept)} balancers' trajectories taken from the previous record of the same settings, "
        f"reuse=true; optimised now: {', '.join(new) or 'none'}; the time adds their recorded seconds)"
        if kept
        else ""
    )
    draw(paths, settings.inits, folder)
    write_json(folder / "summary.json", {"settings": settings.__dict__, "balancers": rows})
    write_jsonl(folder / "trajectories.jsonl", trajectory_rows(paths, settings.inits))
    machine = (
        f"{platform.machine()} {platform.processor() or platform.system()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}, Python {platform.python_version()}"
    )
    write_text(
        folder / "run.md",
        f"# toy_conflict\n\nCommand: `{command}`\n\nMachine: {machine}\n\nTime: {total:.0f} s for "
        f"{len(settings.balancers)} balancers x {len(settings.inits)} starts x {settings.steps} Adam steps "
        f"(lr {settings.lr:g}){reused}.\n\nEnd points (d: distance to the Pareto set x1 in [-7, 7], x2 = {PARETO_X2}; "
        "on the set: d <= 0.1):\n\n" + table(rows, settings.inits),
    )
    print(f"{folder}: params.png, losses.png, run.md, summary.json, trajectories.jsonl ({total:.0f} s)")
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args)
        for name in settings.balancers:  # every balancer builds with its options before any step is taken
            build_balancer(name, settings.options.get(name, {}))
    except ConfigError as ex:
        print(f"toy_conflict: error: {ex}", file=sys.stderr)
        return CONFIG_EXIT
    shown = [a for a in args if not a.startswith("reuse=")]  # reusing changes no result: the preset's command
    run(settings, shlex.join(["python", "experiments/toy_conflict.py", *shown]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

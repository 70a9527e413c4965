"""Cost of training diagnostics: training time with and without them, in one process.

Runs the default experiment (or the given overrides) alternately with ``diagnostics.every=0``
and with diagnostics on (the config's interval, or ``--every``), without the transfer report's
baselines, and reports three estimates of the cost:

- whole runs: the ratio of the medians of ``timings.train_s`` (training steps only; evaluation,
  checkpoints and plots excluded). Runs alternate (off, on, on, off, ...) so that drift in
  machine load hits both sides alike, but on a shared machine this ratio is noisy;
- per step: from the duration of every training step, ``1 + (median sampled step - median
  other step) / (every * median step without diagnostics)``. Medians ignore load spikes, so this
  is the stable estimate;
- inside the hooks: ``overhead_s / train_s`` as recorded in ``diagnostics.json``.

    .venv/bin/python bench/diagnostics.py                      # default experiment
    .venv/bin/python bench/diagnostics.py --repeats 5 --every 25 trainer.epochs=5
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def step_timer(durations: list[float]):
    """Record the duration of each training step (between two ``Progress.advance`` calls of one epoch)."""
    from mtlrun.train.progress import Progress

    advance, epoch_done = Progress.advance, Progress.epoch_done
    last: list[float | None] = [None]

    def timed_advance(self, steps: int = 1) -> None:
        now = time.perf_counter()
        durations.append(now - last[0] if last[0] is not None else float("nan"))  # the epoch's first: no start
        last[0] = now
        advance(self, steps)

    def timed_epoch_done(self, message: str) -> None:
        last[0] = None
        epoch_done(self, message)

    Progress.advance, Progress.epoch_done = timed_advance, timed_epoch_done
    try:
        yield durations
    finally:
        Progress.advance, Progress.epoch_done = advance, epoch_done


def one_run(overrides: list[str], folder: Path) -> tuple[float, float, int, list[float]]:
    """(train_s, diagnostics overhead_s, diagnostics interval, step durations) of one run."""
    from hydra import compose, initialize_config_module

    from mtlrun.train.run import run

    with initialize_config_module("mtlrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with step_timer([]) as durations:
        summary, _ = run(cfg, folder)
    if not summary.completed:
        raise RuntimeError(f"run with {overrides} ended {summary.status}: {summary.error}")
    diagnostics = folder / "diagnostics.json"
    overhead = json.loads(diagnostics.read_text())["overhead_s"] if diagnostics.exists() else 0.0
    return float(summary.timings["train_s"]), float(overhead), int(cfg.diagnostics.every), durations


def median_of(values: list[float]) -> float:
    values = [v for v in values if v == v]  # drop NaN (an epoch's first step)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=None, help="diagnostics.every to measure (default: the config's)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both sides, e.g. trainer.epochs=5")
    args = parser.parse_args()

    from mtlrun.config.schema import register_schema

    register_schema()
    logging.getLogger("mtlrun").setLevel(logging.WARNING)
    # the transfer report's single-task baselines are not part of this measurement
    common = ["report.baselines=false", *args.overrides]
    on = common + ([f"diagnostics.every={args.every}"] if args.every is not None else [])
    off = [*common, "diagnostics.every=0"]
    times: dict[str, list[float]] = {"off": [], "on": []}
    steps: dict[str, list[float]] = {"off": [], "on": [], "sampled": []}
    overheads: list[float] = []
    every = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            for side in order:
                seconds, overhead, interval, durations = one_run(on if side == "on" else off, Path(tmp) / f"{side}{r}")
                times[side].append(seconds)
                if side == "on":
                    every = interval
                    overheads.append(overhead)
                    steps["sampled"] += [d for i, d in enumerate(durations) if i % every == 0]
                    steps["on"] += [d for i, d in enumerate(durations) if i % every != 0]
                else:
                    steps["off"] += durations
                print(f"repeat {r + 1}/{args.repeats} diagnostics {side:>3}: train {seconds:7.2f} s", flush=True)
    off_s, on_s = statistics.median(times["off"]), statistics.median(times["on"])
    plain, other, sampled = median_of(steps["off"]), median_of(steps["on"]), median_of(steps["sampled"])
    per_step = 1 + (sampled - other) / (every * plain)
    own = statistics.median(o / t for o, t in zip(overheads, times["on"]))
    print(f"overrides (diagnostics on): {' '.join(on)}  [diagnostics.every={every}]")
    print(
        f"whole runs: median train time without diagnostics {off_s:.2f} s, with {on_s:.2f} s: ratio {on_s / off_s:.3f}"
    )
    print(
        f"per step: median step {1000 * plain:.2f} ms without diagnostics, {1000 * other:.2f} ms between samples, "
        f"{1000 * sampled:.2f} ms on a sampled step: ratio {per_step:.3f} (overhead {100 * (per_step - 1):+.1f}%)"
    )
    print(f"inside the hooks: overhead_s / train_s = {100 * own:.1f}% (median over runs)")


if __name__ == "__main__":
    main()

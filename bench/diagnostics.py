"""Cost of training diagnostics: training time with and without them, in one process.

Runs the default experiment (or the given overrides) alternately with ``diagnostics.every=0``
and ``diagnostics.every=N`` and compares ``timings.train_s`` from each run's summary (training
steps only; evaluation, checkpoints and plots excluded). Runs alternate (off, on, on, off, ...)
so that drift in machine load hits both sides alike; the ratio of the medians is reported.

    .venv/bin/python bench/diagnostics.py                      # default experiment, every=25
    .venv/bin/python bench/diagnostics.py --repeats 5 --every 50 trainer.epochs=5
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
from pathlib import Path


def train_seconds(overrides: list[str], folder: Path) -> tuple[float, float]:
    """(train_s, diagnostics overhead_s) of one run with ``overrides``."""
    from hydra import compose, initialize_config_module

    from mtlrun.train.run import run

    with initialize_config_module("mtlrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    summary = run(cfg, folder)
    if summary.get("status") != "completed":
        raise RuntimeError(f"run with {overrides} ended {summary.get('status')}: {summary.get('error')}")
    diagnostics = folder / "diagnostics.json"
    overhead = json.loads(diagnostics.read_text())["overhead_s"] if diagnostics.exists() else 0.0
    return float(summary["timings"]["train_s"]), float(overhead)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=None, help="diagnostics.every to measure (default: the config's)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both sides, e.g. trainer.epochs=5")
    args = parser.parse_args()

    from mtlrun.config import register_schema

    register_schema()
    logging.getLogger("mtlrun").setLevel(logging.WARNING)
    # the transfer report's single-task baselines are not part of this measurement
    common = ["report.baselines=false", *args.overrides]
    on = common + ([f"diagnostics.every={args.every}"] if args.every is not None else [])
    off = [*common, "diagnostics.every=0"]
    times: dict[str, list[float]] = {"off": [], "on": []}
    overheads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            for side in order:
                seconds, overhead = train_seconds(on if side == "on" else off, Path(tmp) / f"{side}{r}")
                times[side].append(seconds)
                if side == "on":
                    overheads.append(overhead)
                print(f"repeat {r + 1}/{args.repeats} diagnostics {side:>3}: train {seconds:7.2f} s", flush=True)
    off_s, on_s = statistics.median(times["off"]), statistics.median(times["on"])
    own = statistics.median(o / t for o, t in zip(overheads, times["on"]))
    print(f"overrides (diagnostics on): {' '.join(on)}")
    print(f"median train time without diagnostics: {off_s:.2f} s; with: {on_s:.2f} s")
    print(f"ratio with/without: {on_s / off_s:.3f} (overhead {100 * (on_s / off_s - 1):+.1f}%)")
    print(f"time inside the diagnostics (overhead_s / train_s, median): {100 * own:.1f}%")


if __name__ == "__main__":
    main()

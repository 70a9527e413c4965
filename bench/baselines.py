"""Single-task baselines: training K of them together versus K separate runs, and their share of a run.

Prints, for the default experiment (4 tasks, cnn) and its mlp variant, in one process and on the
same data:
  - seconds to train the K baselines as grouped layers, as K networks in one model, and as K
    separate one-task trainings (the sequential reference), with ratios to the sequential time;
  - seconds to train the multi-task model (hps + ew) and the ratio (MTL + baselines) / MTL.

    python bench/baselines.py [--epochs 5] [--threads 0]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from hydra import compose, initialize_config_module

from mtlrun.config.schema import register_schema
from mtlrun.train.baselines import train_baselines
from mtlrun.train.loop import Trainer
from mtlrun.train.run import build


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def mtl_seconds(cfg) -> float:
    c = build(cfg)
    t = cfg.trainer
    trainer = Trainer.from_config(t, c.model, c.balancer, c.data, seed=cfg.seed, device=c.device, primary=c.primary)
    return timed(trainer.fit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    register_schema()
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, epochs {args.epochs}"
    )
    print(f"{'setting':<22}{'grouped':>10}{'one model':>11}{'sequential':>12}{'MTL':>8}  ratios")
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        for label, overrides in (("multi_digits cnn", []), ("multi_digits mlp", ["encoder=mlp"])):
            cfg = compose("config", overrides=[f"trainer.epochs={args.epochs}", "diagnostics.every=0", *overrides])
            print(measure(label, cfg))


def measure(label: str, cfg) -> str:
    """One table row: baselines grouped, in one model, sequential, and the multi-task run."""
    c = build(cfg)

    def baselines(tasks: list[str], mode: str) -> None:
        train_baselines(cfg, c.data, tasks, c.primary, c.encoder, c.device, mode=mode)

    mtl_seconds(cfg)  # warm-up
    grouped = timed(lambda: baselines(c.tasks, "grouped"))
    separate = timed(lambda: baselines(c.tasks, "separate"))
    sequential = sum(timed(lambda t=t: baselines([t], "separate")) for t in c.tasks)
    mtl = mtl_seconds(cfg)
    best = min(grouped, separate)
    return (
        f"{label:<22}{grouped:>9.2f}s{separate:>10.2f}s{sequential:>11.2f}s{mtl:>7.2f}s  "
        f"grouped/seq {grouped / sequential:.2f}, one-model/seq {separate / sequential:.2f}, "
        f"(MTL+best)/MTL {(mtl + best) / mtl:.2f}"
    )


if __name__ == "__main__":
    main()

"""Where the time of the default run's training goes: cProfile of the trainer's steps and of one
validation pass, grouped into torch kernels, mtlrun's own Python code and torchmetrics.

The grouping answers the question the overhead rows leave open: of a step, how much is the
framework's Python (building the step context, the balancer, bookkeeping) and how much the
kernels a hand-written loop runs too.

    .venv/bin/python bench/profile_step.py [--steps 40]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats

import torch
from overhead import Setup, cycling


def _group(filename: str, function: str) -> str:
    if "/mtlrun/" in filename:
        return "mtlrun (Python)"
    if "/torchmetrics/" in filename:
        return "torchmetrics (Python)"
    if filename == "~" and ("torch." in function or "torch._C" in function or "of 'torch" in function):
        return "torch kernels (C++)"
    if "/torch/" in filename:
        return "torch (Python: nn.Module calls, optimizer)"
    return "other"


def profile(run, top: int = 6) -> tuple[dict[str, float], list[tuple[str, float]], float]:
    """(seconds by group, the ``top`` functions by own time, total seconds) of ``run()``."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    groups: dict[str, float] = {}
    functions = []
    for (filename, line, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = _group(filename, function)
        groups[group] = groups.get(group, 0.0) + tottime
        where = function if filename == "~" else f"{filename.split('site-packages/')[-1]}:{line}({function})"
        functions.append((where, tottime))
    functions.sort(key=lambda f: -f[1])
    return groups, functions[:top], stats.total_tt  # type: ignore[attr-defined]


def report(steps: int) -> str:
    logging.getLogger("mtlrun").setLevel(logging.WARNING)
    setup = Setup.of([])
    size = int(setup.cfg.trainer.batch_size)
    take = cycling(setup.batches(size))
    trainer, lr = setup.trainer, setup.lr

    def train() -> None:
        for _ in range(steps):
            trainer.training_step([take()], 1, lr)

    def evaluate() -> None:
        setup.trainer.evaluator.evaluate(setup.trainer.model, setup.c.data.val, size)

    train()  # warm-up: first-call costs are not the steady state
    evaluate()
    lines = []
    for label, run in (
        (f"{steps} training steps (hps + ew, multi_digits, cnn)", train),
        ("one validation pass", evaluate),
    ):
        groups, functions, total = profile(run)
        lines.append(f"{label}: {total:.3f} s under cProfile")
        for group, seconds in sorted(groups.items(), key=lambda g: -g[1]):
            lines.append(f"  {group:<44} {seconds:7.3f} s  {100 * seconds / total:5.1f}%")
        lines.append("  top functions by own time:")
        lines += [f"    {seconds:7.3f} s  {where}" for where, seconds in functions]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(report(args.steps))


if __name__ == "__main__":
    main()

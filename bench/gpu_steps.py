"""Step benchmarks for a machine with a GPU (run by ``bench/gpu.sh``; ``--device cpu`` works too).

One model and one batch stream for all rows: ``synthetic`` with 3 tasks, input 64, an MLP encoder
256x3, hard parameter sharing, batch 256, Adam. Every row is a ratio of two step times measured
side by side in interleaved rounds (each configuration once per round, so drift in load hits all
alike), median over rounds:

- ``ew`` (the trainer's step) against a hand-written PyTorch loop on an identical model and batches;
- each gradient method against its floor, one forward and T backward passes;
- bf16 and fp16 (autocast; fp16 with the gradient scaler) against fp32, for ``ew`` and ``pcgrad``;
- ``trainer.compile=true`` against eager, for ``ew`` and ``pcgrad``;
- ``task_jacobian``'s batched mode against its loop mode.

    .venv/bin/python bench/gpu_steps.py --out bench/results/gpu.md
    .venv/bin/python bench/gpu_steps.py --device cpu --steps 5 --rounds 2   # a quick check without a GPU
"""

from __future__ import annotations

import argparse
import copy
import logging
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

TASKS = 3
BASE = [
    "dataset=synthetic",
    f"dataset.num_tasks={TASKS}",
    "dataset.input_dim=64",
    "dataset.num_samples=8192",
    "encoder=mlp",
    "encoder.hidden=[256,256,256]",
    "arch=hps",
    "trainer.batch_size=256",
    "report.baselines=false",
]
GRADIENT_METHODS = ["mgda", "pcgrad", "cagrad", "nash_mtl", "upgrad"]

Step = Callable[[int], None]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from mtlrun.config.schema import register_schema

    register_schema()
    with initialize_config_module("mtlrun.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def trainer_step(overrides: list[str], device: str) -> tuple[Step, object]:
    """One trainer step of the configuration ``overrides`` (the trainer's own ``training_step``)."""
    from mtlrun.train.loop import Trainer
    from mtlrun.train.run import build

    cfg = compose([*BASE, f"trainer.device={device}", *overrides])
    c = build(cfg)
    trainer = Trainer.from_config(cfg.trainer, c.model, c.balancer, c.data, seed=0, device=c.device, primary=c.primary)
    generator = torch.Generator().manual_seed(0)
    batches = [b for b in c.data.train.batches(256, shuffle=True, generator=generator) if b[0].shape[0] == 256]

    def step(k: int) -> None:
        trainer.training_step([batches[k % len(batches)]], epoch=1, lr=1e-3)

    return step, (c, batches)


def bare_steps(c, batches) -> dict[str, Step]:
    """The hand-written loop (sum of losses, one backward) and the floor of gradient methods
    (one forward, T backward passes), each on its own copy of the model."""
    specs, tasks = c.data.tasks, c.tasks

    def make(per_task: bool) -> Step:
        model = copy.deepcopy(c.model)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(k: int) -> None:
            x, targets = batches[k % len(batches)]
            optimizer.zero_grad(set_to_none=True)
            outputs = model(x)
            losses = [specs[t].loss(outputs[t], targets[t]) for t in tasks]
            if per_task:
                for i, loss in enumerate(losses):
                    loss.backward(retain_graph=i < len(losses) - 1)
            else:
                torch.stack(losses).sum().backward()
            optimizer.step()

        return step

    return {"bare": make(False), "floor": make(True)}


def jacobian_steps(c, batches) -> dict[str, Step]:
    from mtlrun.balancers.jacobian import task_jacobian

    model, specs, tasks = c.model, c.data.tasks, c.tasks
    shared = [p for p in model.shared_parameters() if p.requires_grad]

    def make(mode: str) -> Step:
        def step(k: int) -> None:
            x, targets = batches[k % len(batches)]
            outputs = model(x)
            task_jacobian(torch.stack([specs[t].loss(outputs[t], targets[t]) for t in tasks]), shared, mode=mode)

        return step

    return {"jacobian loop": make("loop"), "jacobian batched": make("batched")}


def measure(cases: dict[str, Step], steps: int, rounds: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median seconds per step of each case, timed in interleaved rounds after a warm-up."""
    for step in cases.values():
        for k in range(3):
            step(k)
    sync()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, step in cases.items():
            sync()
            started = time.perf_counter()
            for k in range(steps):
                step(k)
            sync()
            times[name].append((time.perf_counter() - started) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


def table(title: str, rows: list[tuple[str, str, float, str]]) -> list[str]:
    lines = [f"## {title}", "", "| configuration | against | ratio | target |", "|---|---|---:|---|"]
    lines += [f"| {a} | {b} | {ratio:.2f} | {target} |" for a, b, ratio, target in rows]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-compile", action="store_true", help="skip the compile rows (slow to compile on CPU)")
    args = parser.parse_args()
    logging.getLogger("mtlrun").setLevel(logging.WARNING)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    run = lambda cases: measure(cases, args.steps, args.rounds, sync)  # noqa: E731

    ew, (c, batches) = trainer_step(["balancer=ew"], args.device)
    t = run({"ew": ew, **bare_steps(c, batches)})
    out = table(
        "ew against a hand-written loop", [("ew (trainer step), steps/s", "bare loop", t["bare"] / t["ew"], ">= 0.95")]
    )

    cases = {name: trainer_step([f"balancer={name}"], args.device)[0] for name in GRADIENT_METHODS}
    t = run({**cases, "floor": bare_steps(c, batches)["floor"]})
    rows = [
        (name, f"floor (1 forward + {TASKS} backward)", t[name] / t["floor"], "<= 1.1") for name in GRADIENT_METHODS
    ]
    out += table("Gradient methods against their floor", rows)

    precisions = {}
    for balancer in ("ew", "pcgrad"):
        for precision in ("32", "bf16", "16"):
            precisions[f"{balancer} {precision}"] = trainer_step(
                [f"balancer={balancer}", f"trainer.precision={precision}"], args.device
            )[0]
    t = run(precisions)
    rows = [
        (f"{b} {p}", f"{b} 32", t[f"{b} {p}"] / t[f"{b} 32"], "< 1 on a GPU with tensor cores")
        for b in ("ew", "pcgrad")
        for p in ("bf16", "16")
    ]
    out += table("Mixed precision against fp32 (time per step)", rows)

    if not args.no_compile:
        compiled = {}
        for balancer in ("ew", "pcgrad"):
            for flag in ("false", "true"):
                compiled[f"{balancer} compile={flag}"] = trainer_step(
                    [f"balancer={balancer}", f"trainer.compile={flag}"], args.device
                )[0]
        t = run(compiled)
        rows = [
            (f"{b} compile=true", f"{b} eager", t[f"{b} compile=true"] / t[f"{b} compile=false"], "< 1")
            for b in ("ew", "pcgrad")
        ]
        out += table("torch.compile against eager (time per step)", rows)

    t = run(jacobian_steps(c, batches))
    out += table(
        "Batched Jacobian against the loop (time per step)",
        [("task_jacobian batched", "task_jacobian loop", t["jacobian batched"] / t["jacobian loop"], "< 1 on a GPU")],
    )

    device = torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine()
    header = [
        "# GPU step benchmarks",
        "",
        f"Device {device}; torch {torch.__version__}; {args.rounds} interleaved rounds of {args.steps} steps, median.",
        "Written by `bench/gpu.sh` (bench/gpu_steps.py). ew rows are steps/s ratios (higher is better);",
        "all other rows are time-per-step ratios (lower is better).",
        "",
    ]
    text = "\n".join([*header, *out])
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()

"""Speed of every registered balancer relative to equal weighting, and of the task Jacobian.

One process, one model and one batch stream for all: multi_digits with tasks left, right, sum, an MLP
encoder, hard parameter sharing, batch 256, Adam. A step is what the trainer does: forward,
``balancer.backward``, optimizer step. Configurations are timed in interleaved rounds (every
configuration once per round) so that drift in machine load hits all alike; the median per-step time
is reported relative to ``ew``. Weight-returning gradient methods are also timed with
``update_every=10`` and ``rep_grad=true``.

The Jacobian rows compare ``task_jacobian`` (loop and batched modes) with a hand-written loop of
K ``autograd.grad`` calls on the same forward pass.

    .venv/bin/python bench/balancers.py                 # all balancers, markdown table on stdout
    .venv/bin/python bench/balancers.py --steps 20 --rounds 3 mgda pcgrad
"""

from __future__ import annotations

import argparse
import inspect
import logging
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

#: the targets the table is read against (time per step relative to ew)
TARGETS = {"loss": 1.05, "exact": 2.6, "nash_mtl": 3.0, "variant": 1.2}
BASE = ["dataset=multi_digits", "tasks.names=[left,right,sum]", "encoder=mlp", "arch=hps", "trainer.batch_size=256"]


@dataclass
class Case:
    label: str
    target: float | None
    step: Callable[[int], None]
    times: list[float]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("mtlrun.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def make_step(overrides: list[str], batches: list | None = None) -> tuple[Callable[[int], None], object, list]:
    """A closure doing one trainer step of the configuration given by ``overrides``."""
    from mtlrun.train.loop import Trainer, build_optimizer, param_groups
    from mtlrun.train.run import build

    cfg = compose([*BASE, *overrides])
    c = build(cfg)
    model, balancer = c.model, c.balancer
    optimizer = build_optimizer("adam", param_groups(model, balancer, 0.0), lr=1e-3, weight_decay=0.0, momentum=0.9)
    if batches is None:
        generator = torch.Generator().manual_seed(0)
        batches = list(c.data.train.batches(256, shuffle=True, generator=generator))
        batches = [b for b in batches if b[0].shape[0] == 256]
    per_step = max(1, balancer.batches_per_step)
    # the trainer's closures (losses on other batches, validation batches, functional evaluation)
    trainer = Trainer(
        model,
        balancer,
        c.data,
        optimizer=optimizer,
        epochs=1,
        batch_size=256,
        grad_clip=0.0,
        seed=0,
        device=c.device,
        primary=c.primary,
    )

    def step(k: int) -> None:
        """The trainer's own optimisation step on the k-th group of batches."""
        group = [batches[(k * per_step + i) % len(batches)] for i in range(per_step)]
        trainer.training_step(group, epoch=1, lr=1e-3)

    return step, c, batches


def jacobian_steps(c, batches) -> dict[str, Callable[[int], None]]:
    """Forward + per-task gradients on the shared parameters, three ways."""
    from mtlrun.balancers.jacobian import task_jacobian

    model, specs, tasks = c.model, c.data.tasks, c.tasks
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    own = [[p for p in model.task_parameters(t) if p.requires_grad] for t in tasks]

    def losses_of(k: int) -> torch.Tensor:
        x, targets = batches[k % len(batches)]
        outputs = model(x)
        return torch.stack([specs[t].loss(outputs[t], targets[t]) for t in tasks])

    def by_hand(k: int) -> None:
        losses = losses_of(k)
        rows = []
        for i in range(len(tasks)):
            grads = torch.autograd.grad(losses[i], [*shared, *own[i]], retain_graph=i < len(tasks) - 1)
            rows.append(torch.cat([g.reshape(-1) for g in grads[: len(shared)]]))
        torch.stack(rows)

    def loop(k: int) -> None:
        model.zero_grad(set_to_none=True)
        task_jacobian(losses_of(k), shared, own, mode="loop")

    def batched(k: int) -> None:
        model.zero_grad(set_to_none=True)
        task_jacobian(losses_of(k), shared, own, mode="batched")

    return {"autograd.grad loop (by hand)": by_hand, "task_jacobian loop": loop, "task_jacobian batched": batched}


def target_of(name: str) -> float | None:
    from mtlrun.balancers import BALANCERS, GradientAggregator, LossWeighting

    cls = BALANCERS.get(name)
    if not inspect.isclass(cls):
        return None
    if getattr(cls, "batches_per_step", 1) > 1:
        return None
    if name == "nash_mtl":
        return TARGETS["nash_mtl"]
    if issubclass(cls, GradientAggregator):
        return TARGETS["exact"]
    if issubclass(cls, LossWeighting):
        return TARGETS["loss"]
    return None


def variants(name: str) -> list[str]:
    """``update_every=10`` and ``rep_grad=true`` for gradient methods that accept them."""
    from mtlrun.balancers import BALANCERS, GradientAggregator

    cls = BALANCERS.get(name)
    if not (inspect.isclass(cls) and issubclass(cls, GradientAggregator)):
        return []
    accepted = inspect.signature(cls.__init__).parameters
    return [option for option in ("update_every=10", "rep_grad=true") if option.split("=")[0] in accepted]


def run_rounds(cases: list[Case], steps: int, warmup: int, rounds: int) -> None:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    counters = {id(case): 0 for case in cases}
    for case in cases:
        for _ in range(warmup):
            case.step(counters[id(case)])
            counters[id(case)] += 1
    for _ in range(rounds):
        for case in cases:
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                case.step(counters[id(case)])
                counters[id(case)] += 1
            sync()
            case.times.append((time.perf_counter() - start) / steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per configuration first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("names", nargs="*", help="balancers to time (default: every registered one)")
    args = parser.parse_args()

    from mtlrun.balancers import BALANCERS
    from mtlrun.config.schema import register_schema

    register_schema()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    logging.getLogger("mtlrun").setLevel(logging.ERROR)
    names = args.names or BALANCERS.names()
    ew_step, components, batches = make_step(["balancer=ew"])
    cases = [Case("ew", None, ew_step, [])]
    for name in names:
        if name == "ew":
            continue
        try:
            step, _, _ = make_step([f"balancer={name}"], batches)
        except Exception as ex:  # an optional extra that is not installed, e.g. torchjd
            print(f"skipping {name}: {str(ex).splitlines()[0]}")
            continue
        cases.append(Case(name, target_of(name), step, []))
        for option in variants(name):
            step, _, _ = make_step([f"balancer={name}", f"balancer.{option}"], batches)
            cases.append(Case(f"{name} ({option})", TARGETS["variant"], step, []))
    jacobian_cases = [Case(label, None, fn, []) for label, fn in jacobian_steps(components, batches).items()]
    jacobian_cases[1].target = jacobian_cases[2].target = 1.0
    run_rounds(cases + jacobian_cases, args.steps, args.warmup, args.rounds)

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {'cuda' if torch.cuda.is_available() else 'cpu'}"
    )
    print(f"workload: {' '.join(BASE)}; {args.rounds} rounds x {args.steps} steps, median per step\n")
    ew = statistics.median(cases[0].times)
    print("| balancer | ms/step | steps/s | time vs ew | target | meets |")
    print("|---|---:|---:|---:|---:|:---:|")
    for case in cases:
        t = statistics.median(case.times)
        ratio = t / ew
        target = f"<= {case.target:.2f}x" if case.target else "-"
        meets = "-" if case.target is None else ("yes" if ratio <= case.target else "no")
        print(f"| {case.label} | {1e3 * t:.2f} | {1 / t:.1f} | {ratio:.2f}x | {target} | {meets} |")
    hand = statistics.median(jacobian_cases[0].times)
    print("\n| task Jacobian (forward + 3 task gradients) | ms | time vs by hand | target | meets |")
    print("|---|---:|---:|---:|:---:|")
    for case in jacobian_cases:
        t = statistics.median(case.times)
        ratio = t / hand
        target = f"<= {case.target:.2f}x" if case.target else "-"
        meets = "-" if case.target is None else ("yes" if ratio <= case.target * 1.02 else "no")
        print(f"| {case.label} | {1e3 * t:.2f} | {ratio:.2f}x | {target} | {meets} |")


if __name__ == "__main__":
    main()

"""mtlrun's training step, epoch and evaluation against a hand-written PyTorch loop.

For each workload the run config is built as ``mtlrun`` builds it; the hand-written loop trains a
copy of the same model (same initial weights) with ``torch.optim.Adam`` on the same batches:
``zero_grad``, forward, sum of the task losses, ``backward``, ``step``. mtlrun's side is the
trainer's own code (``Trainer.training_step`` / ``train_epoch``, the evaluator). Rows:

- step: steps/s of mtlrun with ``ew`` over steps/s of the bare loop (target >= 0.95);
- epoch: a whole pass over the training split including the data path (mtlrun's in-memory
  batching, its ``DataLoader`` path) over the bare loop's pass (a ``randperm`` and slicing, or a
  ``torch.utils.data.DataLoader`` over a ``TensorDataset``) (target >= 0.95);
- evaluation: what the metrics cost per epoch (torchmetrics reset, update and compute on the
  predictions of one validation pass) over the training epoch (target <= 10%); and, without a
  target, the whole validation pass (its forward passes too) over the training epoch;
- gradient methods: a step of each method over the floor any per-task-gradient method pays, one
  forward and T backward passes plus the optimizer step (target <= 1.1x).

    .venv/bin/python bench/overhead.py [--rounds 10] [--steps 10] [--methods mgda,pcgrad]
"""

from __future__ import annotations

import argparse
import copy
import logging
from dataclasses import dataclass
from typing import Any

import torch
from common import Row, Timed, compose, interleave, machine, paired_ratio

#: the workloads of the step rows: (label, overrides, batch size)
WORKLOADS = [
    ("multi_digits, cnn (the default run)", ["dataset=multi_digits", "encoder=cnn"], 128),
    (
        "synthetic MLP 64-256x3, batch 256",
        [
            "dataset=synthetic",
            "dataset.input_dim=64",
            "dataset.num_tasks=2",
            "encoder=mlp",
            "encoder.hidden=[256,256,256]",
        ],
        256,
    ),
]
GRADIENT_METHODS = ["mgda", "pcgrad", "cagrad", "nash_mtl", "upgrad"]
STEP_TARGET, EPOCH_TARGET, EVAL_TARGET, FLOOR_TARGET = 0.95, 0.95, 0.10, 1.1


@dataclass
class Setup:
    """A run's components and its trainer, as ``mtlrun`` builds them (diagnostics off)."""

    cfg: Any
    c: Any
    trainer: Any

    @classmethod
    def of(cls, overrides: list[str]) -> Setup:
        from mtlrun.train.loop import Trainer
        from mtlrun.train.run import build

        cfg = compose([*overrides, "diagnostics.every=0", "trainer.device=cpu"])
        c = build(cfg)
        trainer = Trainer.from_config(
            cfg.trainer, c.model, c.balancer, c.data, seed=cfg.seed, device=c.device, primary=c.primary
        )
        return cls(cfg, c, trainer)

    @property
    def lr(self) -> float:
        """The configured learning rate (an OmegaConf lookup: read it once, outside a timed loop)."""
        return float(self.cfg.trainer.lr)

    def batches(self, size: int) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        g = torch.Generator().manual_seed(0)
        return [b for b in self.c.data.train.batches(size, shuffle=True, generator=g) if b[0].shape[0] == size]


class BareLoop:
    """The loop a PyTorch user writes by hand, on a copy of ``setup``'s model."""

    def __init__(self, setup: Setup) -> None:
        self.model = copy.deepcopy(setup.c.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=setup.lr)
        self.loss_fns = {t: setup.c.data.tasks[t].loss for t in setup.c.tasks}

    def step(self, x: torch.Tensor, y: dict[str, torch.Tensor]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        out = self.model(x)
        loss = sum(fn(out[t], y[t]) for t, fn in self.loss_fns.items())
        loss.backward()
        self.optimizer.step()

    def floor_step(self, x: torch.Tensor, y: dict[str, torch.Tensor]) -> None:
        """One forward and T backward passes (each task's loss through the whole graph), then step."""
        self.optimizer.zero_grad(set_to_none=True)
        out = self.model(x)
        losses = [fn(out[t], y[t]) for t, fn in self.loss_fns.items()]
        for i, loss in enumerate(losses):
            loss.backward(retain_graph=i < len(losses) - 1)
        self.optimizer.step()


def cycling(batches: list) -> Any:
    k = 0

    def take() -> Any:
        nonlocal k
        batch = batches[k % len(batches)]
        k += 1
        return batch

    return take


def step_row(label: str, overrides: list[str], batch: int, rounds: int, steps: int) -> Row:
    setup = Setup.of([*overrides, f"trainer.batch_size={batch}"])
    bare = BareLoop(setup)
    batches = setup.batches(batch)
    mine, theirs = cycling(batches), cycling(batches)
    trainer, lr = setup.trainer, setup.lr

    def mtlrun_steps(n: int) -> None:
        for _ in range(n):
            trainer.training_step([mine()], 1, lr)

    def bare_steps(n: int) -> None:
        for _ in range(n):
            bare.step(*theirs())

    a, b = Timed("mtlrun", mtlrun_steps), Timed("bare", bare_steps)
    interleave([a, b], rounds, steps)
    return Row(
        f"step, hps + ew, {label}: steps/s vs bare loop",
        paired_ratio(b, a),
        STEP_TARGET,
        ">=",
        f"{a.median * 1e3:.2f} ms vs {b.median * 1e3:.2f} ms per step",
    )


def epoch_rows(rounds: int) -> list[Row]:
    """Whole epochs of the default workload, the data path included; and the evaluation pass."""
    from mtlrun.train.progress import Progress

    memory = Setup.of(["loader.mode=memory"])
    loader = Setup.of(["loader.mode=dataloader", "loader.num_workers=0"])
    bare, bare_dl = BareLoop(memory), BareLoop(memory)
    size = int(memory.cfg.trainer.batch_size)
    split = memory.c.data.train
    x, targets = split.x, split.targets
    names = list(targets)
    shuffle = torch.Generator().manual_seed(1)
    dataset = torch.utils.data.TensorDataset(x, *(targets[t] for t in names))
    data_loader = torch.utils.data.DataLoader(dataset, batch_size=size, shuffle=True, generator=shuffle)
    steps = split.num_batches(size)
    epoch = {"n": 0}

    def trainer_epoch(setup: Setup) -> Any:
        def run(n: int) -> None:
            for _ in range(n):
                epoch["n"] += 1
                setup.trainer.train_epoch(epoch["n"], Progress(1, steps, enabled=False))

        return run

    def bare_epoch(n: int) -> None:
        for _ in range(n):
            for idx in torch.randperm(len(x), generator=shuffle).split(size):
                bare.step(x[idx], {t: y[idx] for t, y in targets.items()})

    def bare_loader_epoch(n: int) -> None:
        for _ in range(n):
            for xb, *ys in data_loader:
                bare_dl.step(xb, dict(zip(names, ys)))

    evaluator, model, val = memory.trainer.evaluator, memory.trainer.model, memory.c.data.val

    def evaluation(n: int) -> None:
        for _ in range(n):
            evaluator.evaluate(model, val, size)

    pairs = validation_pairs(memory, size)

    def metrics(n: int) -> None:
        for _ in range(n):
            evaluator.score(pairs)

    cases = [
        Timed("mtlrun memory", trainer_epoch(memory)),
        Timed("bare", bare_epoch),
        Timed("mtlrun dataloader", trainer_epoch(loader)),
        Timed("bare dataloader", bare_loader_epoch),
        Timed("evaluation", evaluation),
        Timed("metrics", metrics),
    ]
    interleave(cases, rounds, 1)
    mem, bare_t, dl, bare_dl_t, ev, met = (c.median for c in cases)
    memory_case, bare_case, loader_case, bare_loader_case, eval_case, metrics_case = cases
    return [
        Row(
            "epoch, in-memory batches, default run: epochs/s vs bare loop (randperm + slicing)",
            paired_ratio(bare_case, memory_case),
            EPOCH_TARGET,
            ">=",
            f"{mem:.3f} s vs {bare_t:.3f} s per epoch ({steps} steps)",
        ),
        Row(
            "epoch, loader.mode=dataloader, default run: epochs/s vs bare DataLoader loop",
            paired_ratio(bare_loader_case, loader_case),
            EPOCH_TARGET,
            ">=",
            f"{dl:.3f} s vs {bare_dl_t:.3f} s per epoch",
        ),
        Row(
            "evaluation: torchmetrics reset + update + compute of a validation pass / training epoch",
            paired_ratio(metrics_case, memory_case),
            EVAL_TARGET,
            "<=",
            f"{met * 1e3:.1f} ms vs {mem:.3f} s",
        ),
        Row(
            "evaluation: the whole validation pass (forward, losses, metrics) / training epoch",
            paired_ratio(eval_case, memory_case),
            None,
            "<=",
            f"{ev:.3f} s vs {mem:.3f} s ({len(val)} val / {len(split)} train samples)",
        ),
    ]


@torch.no_grad()
def validation_pairs(setup: Setup, size: int) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """What one validation pass hands the metrics: ``{task: [(predictions, target), ...]}``."""
    model, specs = setup.trainer.model, setup.c.data.tasks
    model.eval()
    pairs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {t: [] for t in setup.c.tasks}
    for x, targets in setup.c.data.val.batches(size):
        outputs = model(x)
        for t in pairs:
            pair = specs[t].metric_inputs(outputs[t], targets[t])
            if pair is not None:
                pairs[t].append(pair)
    model.train()
    return pairs


def gradient_rows(methods: list[str], rounds: int, steps: int) -> list[Row]:
    """Each gradient method's step against one forward + T backward + step, default workload."""
    setups = {m: Setup.of([f"balancer={m}"]) for m in methods}
    first = next(iter(setups.values()))
    bare = BareLoop(first)
    size = int(first.cfg.trainer.batch_size)
    batches = first.batches(size)
    floor_batch = cycling(batches)

    def floor(n: int) -> None:
        for _ in range(n):
            bare.floor_step(*floor_batch())

    def method(setup: Setup) -> Any:
        take = cycling(batches)
        trainer, lr = setup.trainer, setup.lr

        def run(n: int) -> None:
            for _ in range(n):
                trainer.training_step([take()], 1, lr)

        return run

    floor_case = Timed("floor", floor)
    cases = [Timed(m, method(s)) for m, s in setups.items()]
    interleave([floor_case, *cases], rounds, steps)
    T = len(first.c.tasks)
    return [
        Row(
            f"gradient method {c.label}: step vs floor (1 forward + {T} backward + step)",
            paired_ratio(c, floor_case),
            FLOOR_TARGET,
            "<=",
            f"{c.median * 1e3:.2f} ms vs {floor_case.median * 1e3:.2f} ms per step",
        )
        for c in cases
    ]


def all_rows(rounds: int, steps: int, methods: list[str] | None = None) -> list[Row]:
    logging.getLogger("mtlrun").setLevel(logging.WARNING)
    rows = [step_row(label, o, b, rounds, steps) for label, o, b in WORKLOADS]
    rows += epoch_rows(rounds)
    # twice the rounds: six cases share each round, and these rows sit nearest their target
    rows += gradient_rows(GRADIENT_METHODS if methods is None else methods, 2 * rounds, max(1, steps // 2))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--methods", default=",".join(GRADIENT_METHODS))
    args = parser.parse_args()
    print(machine())
    for row in all_rows(args.rounds, args.steps, [m for m in args.methods.split(",") if m]):
        print(" | ".join(row.cells()))


if __name__ == "__main__":
    main()

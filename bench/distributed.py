"""Data parallel on CPU (gloo): the step time of 2 processes beside 1, and the bytes each rank
all-reduces per step, per family of balancer, against plain DDP's one gradient all-reduce (P floats).

Every configuration trains the same global batch for ``--steps`` steps after ``--warmup``; the step
time is the median over steps of the trainer's ``training_step`` (rank 0's, with 2 processes). On a
machine with fewer free cores than processes the 2-process figure measures contention, not speed-up:
the machine line says how many cores there are.

    .venv/bin/python bench/distributed.py [--steps 20] [--warmup 3] [--batch 128] [--only gradnorm,forum]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import compose, machine, markdown_table  # noqa: E402

#: (family, overrides): one method per family, and the approximate option where it applies
CASES = [
    ("loss weighting (ew)", ["balancer=ew"]),
    ("loss weighting, stateful (famo)", ["balancer=famo"]),
    ("gradient, weights (nash_mtl)", ["balancer=nash_mtl"]),
    ("gradient, weights (pcgrad)", ["balancer=pcgrad"]),
    (
        "gradient, pcgrad, trainer.data_parallel=average_weights",
        ["balancer=pcgrad", "trainer.data_parallel=average_weights"],
    ),
    ("gradient, direction (graddrop)", ["balancer=graddrop"]),
    ("gradient on the representation (mgda, rep_grad)", ["balancer=mgda", "balancer.rep_grad=true"]),
    ("multi-batch (modo, 3 batches per step)", ["balancer=modo"]),
    ("multi-batch (sdmgrad, 3 batches per step)", ["balancer=sdmgrad"]),
    ("own gradients, last shared layer (gradnorm)", ["balancer=gradnorm"]),
    ("own gradients, representation (gradnorm, rep_grad)", ["balancer=gradnorm", "balancer.rep_grad=true"]),
    ("own gradients, EMA of the Jacobian (db_mtl)", ["balancer=db_mtl"]),
    ("lookahead (auto_lambda, validation batch)", ["balancer=auto_lambda"]),
    ("bilevel (moml, validation batch)", ["balancer=moml"]),
    ("bilevel (forum, 5 inner steps, 2 batches per step)", ["balancer=forum"]),
]
WORKLOAD = [
    "dataset=multi_digits",
    "encoder=cnn",
    "trainer.device=cpu",
    "report.baselines=false",
    "diagnostics.every=0",
]


def measure(overrides: list[str], steps: int, warmup: int) -> tuple[float, float, int]:
    """(median step seconds, bytes all-reduced per step by this rank, parameters) of one config."""
    from mtlrun.train import distributed
    from mtlrun.train.stepping import stepping_trainer

    trainer, c = stepping_trainer(compose([*WORKLOAD, *overrides]))
    dp = distributed.current()
    times: list[float] = []
    sent = 0
    for i, group in enumerate(trainer._grouped_batches()):
        if i == warmup + steps:
            break
        before = dp.bytes_reduced if dp is not None else 0
        t0 = time.perf_counter()
        trainer.training_step(group, 1, trainer.optimizer.param_groups[0]["lr"])
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            sent += (dp.bytes_reduced - before) if dp is not None else 0
    params = sum(p.numel() for p in c.model.parameters() if p.requires_grad)
    return statistics.median(times), sent / max(len(times), 1), params


def cases(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The configurations to measure: every case, or those whose name contains one of ``--only``'s words."""
    words = [w for w in (args.only or "").split(",") if w]
    return [(name, o) for name, o in CASES if not words or any(w in name for w in words)]


def rank_main(rank: int, port: int, args: argparse.Namespace, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    from mtlrun.train import distributed

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    distributed.join(torch.device("cpu"))
    try:
        found = {
            name: measure([*o, f"trainer.batch_size={args.batch}"], args.steps, args.warmup) for name, o in cases(args)
        }
        if rank == 0:
            torch.save(found, out)
    finally:
        distributed.leave()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--only", default="", help="comma-separated words; measure only the cases they name")
    args = parser.parse_args()
    import torch.multiprocessing as mp

    chosen = cases(args)
    one = {name: measure([*o, f"trainer.batch_size={args.batch}"], args.steps, args.warmup) for name, o in chosen}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one process on one core: what each of the 2 ranks has
    single = {name: measure([*o, f"trainer.batch_size={args.batch}"], args.steps, args.warmup) for name, o in chosen}
    torch.set_num_threads(threads)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "two.pt")
        mp.spawn(rank_main, args=(port, args, out), nprocs=2, join=True)
        two = torch.load(out)
    for key, value in machine().items():
        print(f"- {key}: {value}")
    params = next(iter(one.values()))[2]
    print(f"\nmulti_digits, cnn ({params} parameters; plain DDP all-reduces {4 * params / 1e3:.1f} kB per step), "
          f"global batch {args.batch}, median of {args.steps} steps\n")  # fmt: skip
    rows = []
    for name, _ in chosen:
        t1, _, _ = one[name]
        t2, sent, _ = two[name]
        ts = single[name][0]
        rows.append(
            [
                name,
                f"{t1 * 1e3:.2f}",
                f"{ts * 1e3:.2f}",
                f"{t2 * 1e3:.2f}",
                f"{sent / 1e3:.1f}",
                f"{sent / (4 * params):.2f}x",
            ]
        )
    header = [
        "family (method)",
        f"1 process, {threads} threads: ms/step",
        "1 process, 1 thread: ms/step",
        "2 processes, 1 thread each: ms/step",
        "kB all-reduced/step/rank",
        "vs DDP",
    ]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()

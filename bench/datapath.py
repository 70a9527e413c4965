"""Step time of the in-memory path versus the DataLoader path over memory-mapped arrays.

Writes a ``dataset=npy_folder`` tree (float32 features, one classification and one regression
task) to a temporary folder, then times the trainer's own epoch loop (batches drawn by the split,
``training_step``: forward, balancer backward, Adam step) with ``loader.mode=memory`` and with
``loader.mode=dataloader`` at several worker counts. Configurations run in interleaved rounds
(each once per round, after one warm-up round) and the median time per step is reported, with its
ratio to the in-memory path. The batches are identical on both paths, so only the time differs.

    python bench/datapath.py [--samples 20000] [--features 512] [--batch-size 256] [--rounds 5]
        [--steps 40] [--workers 0,2] [--device auto] [--threads 0]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module

from mtlrun.config.schema import register_schema
from mtlrun.train.loop import Trainer
from mtlrun.train.run import build


def write_arrays(root: Path, samples: int, features: int) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", samples), ("val", max(1, samples // 10)), ("test", max(1, samples // 10))):
        folder = root / split
        folder.mkdir(parents=True)
        x = np.lib.format.open_memmap(folder / "x.npy", mode="w+", dtype=np.float32, shape=(n, features))
        for start in range(0, n, 4096):  # written in chunks: the array never has to fit in memory
            x[start : start + 4096] = rng.standard_normal((min(4096, n - start), features), dtype=np.float32)
        np.save(folder / "label.npy", (np.asarray(x[:, 0]) > 0).astype(np.int64) + (np.asarray(x[:, 1]) > 0))
        np.save(folder / "target.npy", np.asarray(x[:, 2] + x[:, 3], dtype=np.float32))
        x.flush()
        del x


class Setting:
    """One configuration: its trainer, and a fresh pass over the training split per round."""

    def __init__(self, label: str, cfg) -> None:
        self.label = label
        c = build(cfg)
        self.path = c.data.info["loader"]
        t = cfg.trainer
        self.trainer = Trainer.from_config(
            t, c.model, c.balancer, c.data, seed=cfg.seed, device=c.device, primary=c.primary
        )
        self.device = c.device
        self.times: list[float] = []
        self.epoch = 0

    def round(self, steps: int, record: bool) -> None:
        trainer = self.trainer
        self.epoch += 1
        trainer.shuffle.manual_seed(self.epoch)
        batches = trainer._grouped_batches()
        next(batches)  # the pass's first batch (worker start-up on the first round) is not timed
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        done = 0
        for group in batches:
            trainer.training_step(group, self.epoch, 1e-3)
            done += 1
            if done == steps:
                break
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        if record:
            self.times.append((time.perf_counter() - start) / done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    register_schema()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_arrays(root, args.samples, args.features)
        common = [
            "dataset=npy_folder",
            f"dataset.root={root}",
            "dataset.tasks={label: {kind: classification}, target: {kind: regression}}",
            "encoder=mlp",
            f"trainer.batch_size={args.batch_size}",
            f"trainer.device={args.device}",
            "diagnostics.every=0",
        ]
        settings_args = [("memory", ["loader.mode=memory"])]
        for w in (int(v) for v in args.workers.split(",")):
            settings_args.append((f"dataloader, {w} workers", ["loader.mode=dataloader", f"loader.num_workers={w}"]))
        with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
            settings = [Setting(label, compose("config", overrides=[*common, *o])) for label, o in settings_args]
        for r in range(args.rounds + 1):
            for s in settings:
                s.round(args.steps, record=r > 0)
        device = settings[0].device
        print(
            f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {device}\n"
            f"workload: npy_folder {args.samples} x {args.features} float32 "
            f"({args.samples * args.features * 4 / 2**20:.0f} MiB train), mlp hps ew, batch {args.batch_size}; "
            f"{args.rounds} rounds x {args.steps} steps, median per step\n"
        )
        base = statistics.median(settings[0].times)
        print("| path | ms/step | steps/s | time vs memory |")
        print("|---|---:|---:|---:|")
        for s in settings:
            med = statistics.median(s.times)
            print(f"| {s.label} ({s.path}) | {med * 1e3:.2f} | {1 / med:.1f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()

"""Step time of the dense benchmarks' networks in mtlrun's trainer, relative to a bare PyTorch loop.

For SegNet and the dilated ResNet-50 with ASPP heads (hard parameter sharing, NYUv2's three tasks
on fake data of the real layout), a step of mtlrun's trainer (``Trainer.training_step``: forward,
``balancer.backward``, optimizer step) with ``ew`` and with ``pcgrad`` is timed against a bare
PyTorch loop on the same model and batches: forward, the three losses summed, ``backward``, Adam
step. ``ew`` should cost the same as the bare loop; ``pcgrad`` pays one backward per task for the
task Jacobian on the shared parameters. Configurations are timed in interleaved rounds and the
median step time is reported.

    .venv/bin/python bench/dense.py                       # small size, markdown table on stdout
    .venv/bin/python bench/dense.py --size 96 128 --batch 4 --steps 5 --rounds 3 --device cuda
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def encoders(narrow: int) -> dict[str, list[str]]:
    """SegNet and the dilated ResNet-50 with ASPP heads, every width divided by ``narrow``."""
    segnet = ",".join(str(c // narrow) for c in (64, 128, 256, 512, 512))
    return {
        f"segnet (widths / {narrow})": ["encoder=segnet", f"encoder.channels=[{segnet}]"],
        f"resnet_dilated (ResNet-50, ASPP; widths / {narrow})": [
            "encoder=resnet_dilated",
            f"encoder.width={64 // narrow}",
            f"encoder.head_width={256 // narrow}",
        ],
    }


def write_fake_nyuv2(root: Path, n: int, size: tuple[int, int]) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    h, w = size
    for split in ("train", "val"):
        for name, shape in (("image", (h, w, 3)), ("label", (h, w)), ("depth", (h, w, 1)), ("normal", (h, w, 3))):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                array = rng.random(shape).astype("float32")
                if name == "label":
                    array = np.floor(array * 13).astype("float32")
                if name == "normal":
                    array /= np.linalg.norm(array, axis=-1, keepdims=True)
                np.save(root / split / name / f"{i}.npy", array)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from mtlrun.config.schema import register_schema

    register_schema()
    with initialize_config_module("mtlrun.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def steps_for(root: Path, encoder: list[str], batch: int, device: str) -> dict[str, callable]:
    """Closures doing one step: the bare loop, mtlrun with ew, mtlrun with pcgrad (same init, same batches)."""
    from mtlrun.train.loop import Trainer, param_groups
    from mtlrun.train.optimizers import build_optimizer
    from mtlrun.train.run import build

    closures = {}
    for balancer in ("ew", "pcgrad"):
        cfg = compose(
            [
                "dataset=nyuv2",
                f"dataset.root={root}",
                "dataset.verify=false",
                *encoder,
                "arch=hps",
                f"balancer={balancer}",
                f"trainer.device={device}",
                "diagnostics.every=0",
            ]
        )
        c = build(cfg)
        batches = list(c.data.train.batches(batch))
        batches = [b for b in batches if b[0].shape[0] == batch]
        optimizer = build_optimizer("adam", param_groups(c.model, c.balancer, 0.0), 1e-4, 0.0, 0.9)
        trainer = Trainer(
            c.model, c.balancer, c.data, optimizer=optimizer, epochs=1, batch_size=batch, grad_clip=0.0,
            seed=0, device=c.device, primary=c.primary,
        )  # fmt: skip
        closures[f"mtlrun {balancer}"] = (lambda tr, bs: lambda k: tr.training_step([bs[k % len(bs)]], 1, 1e-4))(
            trainer, batches
        )
        if balancer == "ew":
            model, specs = c.model, c.data.tasks
            bare_opt = torch.optim.Adam(model.parameters(), lr=1e-4)

            def bare(k: int, model=model, specs=specs, bs=batches, opt=bare_opt) -> None:
                x, targets = bs[k % len(bs)]
                opt.zero_grad(set_to_none=True)
                outputs = model(x)
                sum(specs[t].loss(outputs[t], targets[t]) for t in specs).backward()
                opt.step()

            closures["bare PyTorch loop"] = bare
    return closures


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(32, 48), help="image height and width")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--narrow", type=int, default=1, help="divide every channel width by this")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "nyuv2"
        write_fake_nyuv2(root, n=2 * args.batch, size=tuple(args.size))
        for label, encoder in encoders(args.narrow).items():
            closures = steps_for(root, encoder, args.batch, args.device)
            times: dict[str, list[float]] = {name: [] for name in closures}
            for step in closures.values():  # warm-up
                step(0)
            sync(args.device)
            for _ in range(args.rounds):
                for name, step in closures.items():
                    for k in range(args.steps):
                        sync(args.device)
                        start = time.perf_counter()
                        step(k)
                        sync(args.device)
                        times[name].append(time.perf_counter() - start)
            print(f"{label}: done", file=sys.stderr, flush=True)
            bare = statistics.median(times["bare PyTorch loop"])
            for name in closures:
                median = statistics.median(times[name])
                rows.append((label, name, median * 1000, median / bare))
    print(
        f"{args.size[0]}x{args.size[1]} images, batch {args.batch}, device {args.device}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
        f"median of {args.steps * args.rounds} steps"
    )
    print()
    print("| encoder | step | ms / step | relative to bare loop |")
    print("|---|---|---:|---:|")
    for label, name, ms, rel in rows:
        print(f"| {label} | {name} | {ms:.1f} | {rel:.2f} |")


if __name__ == "__main__":
    main()

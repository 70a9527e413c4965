"""Tiny ``dataset=npy_folder`` trees written in the exact on-disk format."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NPY_TASKS = "dataset.tasks={cls: {kind: classification}, flag: {kind: binary}, y: {kind: regression}}"


def write_npy_folder(root: Path, sizes: tuple[int, int, int] = (200, 60, 60), dim: int = 8, seed: int = 0) -> Path:
    """``root/{train,val,test}/{x,cls,flag,y}.npy`` with learnable targets; returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "val", "test"), sizes):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        x = rng.normal(size=(n, dim)).astype(np.float32)
        np.save(folder / "x.npy", x)
        np.save(folder / "cls.npy", (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64))
        np.save(folder / "flag.npy", (x[:, 2] > 0).astype(np.float32))
        np.save(folder / "y.npy", 10.0 + 3.0 * x[:, 3] + x[:, 4] ** 2)  # float64 on disk, float32 in batches
    return root

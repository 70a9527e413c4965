"""Fake NYUv2 and Cityscapes folders in MTAN's exact ``.npy`` layout (height x width x channels, float32)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SMALL = (16, 24)


def _write(folder: Path, i: int, array: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{i}.npy", array.astype(np.float32))


def _example(rng: np.random.Generator, h: int, w: int, classes: int) -> dict[str, np.ndarray]:
    image = rng.random((h, w, 3))
    # labels follow the image a little, so a network can learn something in one epoch
    label = np.minimum((image[..., 0] * classes).astype(int), classes - 1).astype(float)
    label[rng.random((h, w)) < 0.1] = -1
    depth = 1.0 + 4.0 * image[..., 1:2]
    depth[rng.random((h, w)) < 0.1] = 0.0
    normal = rng.normal(size=(h, w, 3))
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    normal[rng.random((h, w)) < 0.1] = 0.0
    return {"image": image, "label": label, "depth": depth, "normal": normal}


def write_nyuv2(root: Path, n_train: int = 6, n_val: int = 4, size: tuple[int, int] = SMALL, seed: int = 0) -> Path:
    """``root/{train,val}/{image,label,depth,normal}/<i>.npy`` with 13 classes and -1/0 invalid pixels."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            for name, array in _example(rng, *size, 13).items():
                _write(root / split / name, i, array)
    return root


def write_cityscapes(
    root: Path, n_train: int = 6, n_val: int = 4, size: tuple[int, int] = SMALL, seed: int = 0
) -> Path:
    """``root/{train,val}/{image,label_7,label_19,depth}/<i>.npy``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            example = _example(rng, *size, 19)
            _write(root / split / "image", i, example["image"])
            _write(root / split / "label_19", i, example["label"])
            label_7 = np.where(example["label"] < 0, -1, example["label"] % 7)
            _write(root / split / "label_7", i, label_7)
            _write(root / split / "depth", i, example["depth"])
    return root

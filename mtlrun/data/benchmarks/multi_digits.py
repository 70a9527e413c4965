"""MultiDigits: MultiMNIST-style pairs of real handwritten digits, offline.

Sener & Koltun (NeurIPS 2018) overlay two MNIST digits, one shifted to the upper left and one to
the lower right, and ask for both labels. MultiDigits applies the same recipe to scikit-learn's
bundled UCI digits (1,797 8x8 images, no download): the source images are first split into
train/val/test (so no digit image appears in two splits), then each image is paired with
``pairs_per_image`` random partners from its own split. The left digit sits at columns 0-7 and
the right digit at columns ``8 - overlap`` onwards with ``overlap`` in ``[0, max_overlap]``, each
with a random vertical shift; overlapping pixels keep the maximum. Tasks:

- ``left``, ``right``: the two digits (10-class classification);
- ``sum``: left + right (regression, 0-18);
- ``parity``: whether the sum is odd (binary).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mtlrun.data.base import DATASETS, MultiTaskDataset, TensorSplit, split_indices
from mtlrun.data.tasks import binary_task, classification_task, regression_task
from mtlrun.registry import in_range, positive

HEIGHT, DIGIT = 10, 8
WIDTH = 2 * DIGIT


def load_uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 UCI digits as (pixels (N, 64) in 0..16, labels (N,)), as ``load_digits`` returns them.

    The CSV that scikit-learn ships is read directly: importing ``sklearn.datasets`` loads scipy
    and most of scikit-learn (seconds on a small machine) for a 1,797-row file. The package is
    located without importing it; elsewhere ``load_digits`` is the fallback.
    """
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1], data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data, digits.target


def compose_pairs(
    images: Tensor, labels: Tensor, pairs_per_image: int, max_overlap: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Compose ``len(images) * pairs_per_image`` two-digit canvases (N, 1, 10, 16).

    Returns the canvases and the left and right labels.
    """
    n = images.shape[0]
    left_idx = torch.arange(n).repeat_interleave(pairs_per_image)
    right_idx = torch.randint(0, n, (left_idx.numel(),), generator=generator)
    m = left_idx.numel()
    overlap = torch.randint(0, max_overlap + 1, (m,), generator=generator)
    shift_left = torch.randint(0, HEIGHT - DIGIT + 1, (m,), generator=generator)
    shift_right = torch.randint(0, HEIGHT - DIGIT + 1, (m,), generator=generator)
    canvas = torch.zeros(m, HEIGHT, WIDTH)
    right_canvas = torch.zeros(m, HEIGHT, WIDTH)
    rows = torch.arange(DIGIT)
    cols = torch.arange(DIGIT)
    sample = torch.arange(m)[:, None, None]
    canvas[sample, (shift_left[:, None] + rows)[:, :, None], cols[None, None, :]] = images[left_idx]
    right_cols = (DIGIT - overlap)[:, None] + cols
    right_canvas[sample, (shift_right[:, None] + rows)[:, :, None], right_cols[:, None, :]] = images[right_idx]
    return torch.maximum(canvas, right_canvas).unsqueeze(1), labels[left_idx], labels[right_idx]


def _split(images: Tensor, labels: Tensor, pairs: int, overlap: int, g: torch.Generator) -> TensorSplit:
    x, left, right = compose_pairs(images, labels, pairs, overlap, g)
    total = left + right
    return TensorSplit(x, {"left": left, "right": right, "sum": total.float(), "parity": (total % 2).float()})


@DATASETS.register("multi_digits")
def multi_digits(
    seed: int = 0,
    pairs_per_image: int = 2,
    max_overlap: int = 4,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> MultiTaskDataset:
    """Build MultiDigits; the same ``seed`` always gives the same images, pairs and splits."""
    positive("dataset", pairs_per_image=pairs_per_image)
    in_range("dataset", "max_overlap", max_overlap, 0, DIGIT)
    in_range("dataset", "val_fraction", val_fraction, 0.01, 0.5)
    in_range("dataset", "test_fraction", test_fraction, 0.01, 0.5)
    pixels, targets = load_uci_digits()
    images = torch.tensor(pixels, dtype=torch.float32).reshape(-1, DIGIT, DIGIT) / 16.0
    labels = torch.tensor(targets, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    train_i, val_i, test_i = split_indices(len(labels), (val_fraction, test_fraction), g)
    splits = [_split(images[i], labels[i], pairs_per_image, max_overlap, g) for i in (train_i, val_i, test_i)]
    mean, std = splits[0].x.mean(), splits[0].x.std()
    for s in splits:
        s.x = (s.x - mean) / std
    train_sum = splits[0].targets["sum"]
    tasks = {
        "left": classification_task("left", 10),
        "right": classification_task("right", 10),
        "sum": regression_task("sum", shift=train_sum.mean().item(), scale=train_sum.std().item()),
        "parity": binary_task("parity"),
    }
    return MultiTaskDataset(
        tasks=tasks,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_shape=(1, HEIGHT, WIDTH),
        default_encoder="cnn",
        info={"source": "sklearn.datasets.load_digits", "sizes": [len(s) for s in splits]},
    )

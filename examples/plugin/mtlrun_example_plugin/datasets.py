"""A small synthetic dataset with a binary and a regression task."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def two_tasks(
    n: int = 600,
    features: int = 8,
    relatedness: float = 0.5,
    noise: float = 0.3,
    seed: int = 0,
    binary_metrics: Sequence[str] = ("accuracy", "brier"),
) -> dict:
    """Two related tasks on the same inputs: ``sign`` (binary) and ``score`` (regression).

    The tasks read directions ``u`` and ``relatedness * u + sqrt(1 - relatedness^2) * v`` of the
    inputs, with ``u`` and ``v`` orthogonal unit vectors, so ``relatedness`` is the cosine between
    what they need (0: unrelated, 1: the same direction).
    """
    rng = np.random.default_rng(seed)
    u, v = np.linalg.qr(rng.normal(size=(features, 2)))[0].T
    w = relatedness * u + np.sqrt(max(0.0, 1 - relatedness**2)) * v

    def split(m: int) -> tuple:
        x = rng.normal(size=(m, features)).astype("float32")
        sign = (x @ u + noise * rng.normal(size=m) > 0).astype("int64")
        score = x @ w + noise * rng.normal(size=m)
        return x, {"sign": sign, "score": score}

    return {
        "tasks": {"sign": {"kind": "binary", "metrics": list(binary_metrics)}, "score": {"kind": "regression"}},
        "train": split(n),
        "val": split(n // 4),
        "test": split(n // 4),
    }

"""Correlated synthetic regression tasks of the MMoE paper (Ma et al., KDD 2018, section 4.1).

With orthonormal ``u_1..u_K`` the task weight vectors are ``w_1 = c u_1`` and
``w_k = c (p u_1 + sqrt(1 - p^2) u_k)`` for k >= 2, so ``cos(w_1, w_k) = p`` exactly. For
``x ~ N(0, I)`` the labels are ``y_k = w_k^T x + sum_i sin(alpha_i w_k^T x + beta_i) + eps_k`` with
shared ``alpha_i, beta_i ~ N(0, 1)`` and ``eps_k ~ N(0, noise_std^2)``. The Pearson correlation of
the noise-free linear parts ``w_1^T x`` and ``w_k^T x`` is then ``p``; the sinusoids lower the
label correlation, which is what makes the task relationship non-trivial. For K > 2, tasks 2..K
correlate with task 1 at ``p`` and with each other at ``p^2``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mtlrun.data.base import DATASETS, MultiTaskDataset, TensorSplit, split_indices
from mtlrun.data.tasks import regression_task
from mtlrun.errors import ConfigError
from mtlrun.registry import in_range, positive


def mmoe_synthetic(
    num_samples: int,
    input_dim: int,
    correlation: float,
    num_tasks: int,
    scale: float,
    num_sinusoids: int,
    noise_std: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """Return inputs (N, d), labels (N, K) and the noise-free linear parts ``w_k^T x`` (N, K)."""
    q, _ = torch.linalg.qr(torch.randn(input_dim, num_tasks, generator=generator, dtype=torch.float64))
    u = q.T  # (K, d), orthonormal rows
    w = torch.empty_like(u)
    w[0] = scale * u[0]
    w[1:] = scale * (correlation * u[0] + math.sqrt(max(0.0, 1.0 - correlation**2)) * u[1:])
    alpha = torch.randn(num_sinusoids, generator=generator, dtype=torch.float64)
    beta = torch.randn(num_sinusoids, generator=generator, dtype=torch.float64)
    x = torch.randn(num_samples, input_dim, generator=generator, dtype=torch.float64)
    linear = x @ w.T
    waves = torch.sin(linear[..., None] * alpha + beta).sum(-1) if num_sinusoids else torch.zeros_like(linear)
    noise = noise_std * torch.randn(linear.shape, generator=generator, dtype=torch.float64)
    return x.float(), (linear + waves + noise).float(), linear.float()


@DATASETS.register("synthetic")
def synthetic(
    correlation: float = 0.5,
    num_tasks: int = 2,
    input_dim: int = 100,
    num_samples: int = 12000,
    scale: float = 1.0,
    num_sinusoids: int = 5,
    noise_std: float = 0.1,
    val_fraction: float = 1 / 12,
    test_fraction: float = 1 / 12,
    seed: int = 0,
) -> MultiTaskDataset:
    """Build the MMoE synthetic dataset; tasks are named ``t1`` ... ``tK``."""
    in_range("dataset", "correlation", correlation, -1.0, 1.0)
    if num_tasks < 2:
        raise ConfigError(f"dataset.num_tasks={num_tasks} must be >= 2")
    if input_dim < num_tasks:
        raise ConfigError(f"dataset.input_dim={input_dim} must be >= dataset.num_tasks={num_tasks}")
    positive("dataset", num_samples=num_samples, scale=scale)
    if num_sinusoids < 0 or noise_std < 0:
        raise ConfigError("dataset.num_sinusoids and dataset.noise_std must be >= 0")
    g = torch.Generator().manual_seed(seed)
    x, y, _ = mmoe_synthetic(num_samples, input_dim, correlation, num_tasks, scale, num_sinusoids, noise_std, g)
    names = [f"t{k + 1}" for k in range(num_tasks)]
    parts = split_indices(num_samples, (val_fraction, test_fraction), g)
    splits = [TensorSplit(x[i], {n: y[i, k] for k, n in enumerate(names)}) for i in parts]
    return MultiTaskDataset(
        tasks={n: regression_task(n) for n in names},
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_shape=(input_dim,),
        default_encoder="mlp",
        info={"sizes": [len(s) for s in splits], "correlation": correlation},
    )

"""Correlated synthetic regression tasks of the MMoE paper (Ma et al., KDD 2018, section 4.1).

With orthonormal ``u_1..u_K`` the task weight vectors are ``w_1 = c u_1`` and
``w_k = c (p u_1 + sqrt(1 - p^2) u_k)`` for k >= 2, so ``cos(w_1, w_k) = p`` exactly. For
``x ~ N(0, I)`` the labels are ``y_k = w_k^T x + sum_i sin(alpha_i w_k^T x + beta_i) + eps_k`` with
shared ``alpha_i, beta_i ~ N(0, 1)`` and ``eps_k ~ N(0, noise_std^2)``. The Pearson correlation of
the noise-free linear parts ``w_1^T x`` and ``w_k^T x`` is then ``p``; the sinusoids lower the
label correlation, which is what makes the task relationship non-trivial. For K > 2, tasks 2..K
correlate with task 1 at ``p`` and with each other at ``p^2``.

Planted task clusters (``dataset.clusters``, off at 0): the tasks are split into K clusters, in
contiguous blocks by default (6 tasks, 2 clusters: t1-t3 and t4-t6; the first ``T mod K`` clusters
get one task more) or by an explicit list giving each task's cluster. With orthonormal
``u_1..u_K, v_1..v_T`` (a QR factor of a Gaussian ``d x (K + T)`` matrix, so ``d >= K + T``), the
cluster directions are the vertices of a regular simplex centred at the origin,
``c_a = sqrt(K / (K - 1)) (u_a - ubar)`` with ``ubar = (1/K) sum_b u_b`` (``c_1 = u_1`` when
K = 1), so ``|c_a| = 1`` and ``c_a^T c_b = -1 / (K - 1)`` for a != b (opposite for K = 2). Task k
of cluster a(k) has ``w_k = c (sqrt(p) c_a(k) + sqrt(1 - p) v_k)``; since the ``v_k`` are
orthonormal and orthogonal to every ``c_a``, ``|w_k| = c`` and

    cos(w_j, w_k) = p                  within a cluster,
    cos(w_j, w_k) = -p / (K - 1)       across clusters,

which needs ``0 < p <= 1`` (``p = 0`` plants nothing). Labels are made from these ``w_k`` exactly as
above, so the linear parts again correlate as the weight vectors do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.data.base import DATASETS, MultiTaskDataset, TensorSplit, split_indices
from mtlrun.data.tasks import regression_task
from mtlrun.errors import ConfigError
from mtlrun.registry import in_range, positive


def labelled_inputs(
    w: Tensor, num_samples: int, num_sinusoids: int, noise_std: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs ``x ~ N(0, I)`` (N, d), labels ``y_k = w_k^T x + sum_i sin(alpha_i w_k^T x + beta_i) + eps_k``
    (N, T) and the linear parts (N, T), for the task weight vectors ``w`` (T, d), drawn from ``generator``."""
    alpha = torch.randn(num_sinusoids, generator=generator, dtype=torch.float64)
    beta = torch.randn(num_sinusoids, generator=generator, dtype=torch.float64)
    x = torch.randn(num_samples, w.shape[1], generator=generator, dtype=torch.float64)
    linear = x @ w.T
    waves = torch.sin(linear[..., None] * alpha + beta).sum(-1) if num_sinusoids else torch.zeros_like(linear)
    noise = noise_std * torch.randn(linear.shape, generator=generator, dtype=torch.float64)
    return x.float(), (linear + waves + noise).float(), linear.float()


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
    x, y, linear = labelled_inputs(w, num_samples, num_sinusoids, noise_std, generator)
    return x, y, linear


def cluster_assignment(clusters: int | Sequence[int], num_tasks: int) -> list[int]:
    """Each task's cluster index (0-based, in order of first appearance) from ``dataset.clusters``."""
    if isinstance(clusters, bool):
        raise ConfigError(f"dataset.clusters={clusters} must be a number of clusters or a list of each task's cluster")
    if isinstance(clusters, int):
        if clusters < 0:
            raise ConfigError(f"dataset.clusters={clusters} must be >= 0 (0 = no clusters)")
        if clusters > num_tasks:
            raise ConfigError(f"dataset.clusters={clusters} must be <= dataset.num_tasks={num_tasks}")
        sizes = [num_tasks // clusters + (a < num_tasks % clusters) for a in range(clusters)]
        return [a for a, size in enumerate(sizes) for _ in range(size)]
    labels = list(clusters)
    if len(labels) != num_tasks or not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise ConfigError(
            f"dataset.clusters={labels} must list one integer cluster per task (dataset.num_tasks={num_tasks})"
        )
    first: dict[int, int] = {}
    for v in labels:
        first.setdefault(v, len(first))
    return [first[v] for v in labels]


def simplex_directions(u: Tensor) -> Tensor:
    """Unit vectors ``c_a = sqrt(K/(K-1)) (u_a - mean_b u_b)`` of orthonormal rows ``u`` (K, d):
    pairwise cosine ``-1/(K-1)``; ``u`` itself when K = 1."""
    k = u.shape[0]
    if k == 1:
        return u.clone()
    return math.sqrt(k / (k - 1)) * (u - u.mean(0, keepdim=True))


def clustered_synthetic(
    num_samples: int,
    input_dim: int,
    correlation: float,
    cluster_of: Sequence[int],
    scale: float,
    num_sinusoids: int,
    noise_std: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Inputs (N, d), labels (N, T), linear parts (N, T) and the weight vectors (T, d) of planted clusters."""
    num_tasks, k = len(cluster_of), max(cluster_of) + 1
    q, _ = torch.linalg.qr(torch.randn(input_dim, k + num_tasks, generator=generator, dtype=torch.float64))
    centres = simplex_directions(q.T[:k])  # (K, d)
    own = q.T[k:]  # (T, d), orthogonal to every centre
    index = torch.tensor(list(cluster_of))
    w = scale * (math.sqrt(correlation) * centres[index] + math.sqrt(1.0 - correlation) * own)
    x, y, linear = labelled_inputs(w, num_samples, num_sinusoids, noise_std, generator)
    return x, y, linear, w


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
    clusters: int | list[int] = 0,
) -> MultiTaskDataset:
    """Build the MMoE synthetic dataset; tasks are named ``t1`` ... ``tK``.

    ``clusters`` (> 0, or one cluster per task) plants task clusters (the module docstring): tasks
    correlated at ``correlation`` within a cluster, anti-correlated across.
    """
    in_range("dataset", "correlation", correlation, -1.0, 1.0)
    if num_tasks < 2:
        raise ConfigError(f"dataset.num_tasks={num_tasks} must be >= 2")
    if input_dim < num_tasks:
        raise ConfigError(f"dataset.input_dim={input_dim} must be >= dataset.num_tasks={num_tasks}")
    positive("dataset", num_samples=num_samples, scale=scale)
    if num_sinusoids < 0 or noise_std < 0:
        raise ConfigError("dataset.num_sinusoids and dataset.noise_std must be >= 0")
    names = [f"t{k + 1}" for k in range(num_tasks)]
    g = torch.Generator().manual_seed(seed)
    info: dict[str, Any] = {}
    if isinstance(clusters, int) and not isinstance(clusters, bool) and clusters == 0:
        x, y, _ = mmoe_synthetic(num_samples, input_dim, correlation, num_tasks, scale, num_sinusoids, noise_std, g)
    else:
        cluster_of = cluster_assignment(clusters, num_tasks)
        k = max(cluster_of) + 1
        if not 0.0 < correlation <= 1.0:
            raise ConfigError(
                f"dataset.correlation={correlation} must be in (0, 1] with dataset.clusters "
                "(the within-cluster cosine; 0 plants no clusters)"
            )
        if input_dim < k + num_tasks:
            raise ConfigError(
                f"dataset.input_dim={input_dim} must be >= {k + num_tasks} (clusters + tasks) with dataset.clusters"
            )
        x, y, _, _ = clustered_synthetic(
            num_samples, input_dim, correlation, cluster_of, scale, num_sinusoids, noise_std, g
        )
        groups = [[n for n, a in zip(names, cluster_of) if a == b] for b in range(k)]
        info = {
            "clusters": k,
            "planted_groups": groups,
            "cross_cluster_cosine": -correlation / (k - 1) if k > 1 else None,
        }
    parts = split_indices(num_samples, (val_fraction, test_fraction), g)
    splits = [TensorSplit(x[i], {n: y[i, k] for k, n in enumerate(names)}) for i in parts]
    return MultiTaskDataset(
        tasks={n: regression_task(n) for n in names},
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_shape=(input_dim,),
        default_encoder="mlp",
        info={"sizes": [len(s) for s in splits], "correlation": correlation, **info},
    )

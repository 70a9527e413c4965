"""Aligned-MTL: the aligned Gramian has condition number 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlrun.balancers.aligned_mtl import balance_transformation
from tests.balancers.gradient_toys import build, random_jacobian, weights


def nonzero_eigenvalues(M: np.ndarray) -> np.ndarray:
    values = np.linalg.eigvalsh(M)
    return values[values > 1e-9 * values.max()]


@pytest.mark.parametrize("num_tasks,seed", [(2, 0), (3, 1), (5, 2)])
def test_aligned_gramian_has_condition_number_one_at_the_smallest_eigenvalue(num_tasks, seed):
    J = random_jacobian(num_tasks, seed=seed) * torch.arange(1, num_tasks + 1, dtype=torch.float64)[:, None]
    G = (J @ J.T).numpy()
    B = balance_transformation(G)
    aligned = nonzero_eigenvalues(B @ G @ B)
    assert len(aligned) == num_tasks
    assert aligned.max() / aligned.min() == pytest.approx(1.0, abs=1e-9)
    assert aligned[0] == pytest.approx(np.linalg.eigvalsh(G).min(), rel=1e-9)
    w = weights(build("aligned_mtl", num_tasks), J).numpy()
    assert np.allclose(w, B.sum(axis=1))


def test_rank_deficient_jacobian_aligns_its_span():
    J = random_jacobian(3, seed=3)
    J[2] = J[0] + J[1]
    G = (J @ J.T).numpy()
    aligned = nonzero_eigenvalues(balance_transformation(G) @ G @ balance_transformation(G))
    assert len(aligned) == 2 and aligned.max() / aligned.min() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mode,pick", [("median", np.median), ("rmse", np.mean)])
def test_scale_modes_set_the_common_eigenvalue(mode, pick):
    J = random_jacobian(3, seed=4)
    G = (J @ J.T).numpy()
    B = balance_transformation(G, mode)
    assert np.allclose(nonzero_eigenvalues(B @ G @ B), pick(np.linalg.eigvalsh(G)))

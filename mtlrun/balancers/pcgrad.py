"""PCGrad: project conflicting gradients (Yu et al., NeurIPS 2020)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext
from mtlrun.balancers.common import GramianAggregator


def pcgrad_coefficients(G: np.ndarray) -> np.ndarray:
    """C (T x T) with ``g_i^PC = sum_k C[i, k] g_k`` after Algorithm 1's projections.

    For each task i, the other tasks j are visited in a random order (``torch.randperm``, so the
    global torch seed makes runs reproducible); when ``g_i^PC . g_j < 0`` the component along g_j is
    removed: ``g_i^PC -= (g_i^PC . g_j / ||g_j||^2) g_j``. Everything is computed from the Gramian.
    """
    T = G.shape[0]
    C = np.eye(T)
    for i in range(T):
        for j in torch.randperm(T).tolist():
            if j == i:
                continue
            inner = float(G[j] @ C[i])
            if inner < 0.0 and G[j, j] > 0.0:
                C[i, j] -= inner / G[j, j]
    return C


@BALANCERS.register("pcgrad")
class PCGrad(GramianAggregator):
    """Gradient surgery (Yu et al., NeurIPS 2020): the update is ``sum_i g_i^PC`` (Algorithm 1).

    Each task gradient is projected onto the normal plane of every other task gradient it conflicts
    with (negative inner product), in random order. The update is a combination of the task
    gradients, so the method returns its weights ``sum_i C[i, :]``.
    """

    output = "weights"

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        return self.to_weights(pcgrad_coefficients(self.host_gramian(jacobian)).sum(axis=0), jacobian)

"""ConFIG: conflict-free training (Liu et al., ICLR 2025)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext
from mtlrun.balancers.common import GramianAggregator


def config_weights(G: np.ndarray, rcond: float = 1e-10) -> np.ndarray:
    """Weights w with ``J^T w`` the ConFIG update (Eq. 2), computed on the Gramian.

    With unit gradients ``u_i = g_i / ||g_i||`` (rows of ``U = D^{-1} J``), the conflict-free direction
    is ``g_u = pinv(U) 1 = J^T D^{-1} (D^{-1} G D^{-1})^+ 1``: equal inner product with every u_i.
    The update is ``(sum_i g_i . g_u/||g_u||) g_u/||g_u||``, i.e. ``w = (1^T G v / v^T G v) v`` with
    ``v = D^{-1} (D^{-1} G D^{-1})^+ 1``. Zero gradients get zero weight; zero update when g_u = 0.
    """
    norms = np.sqrt(np.clip(np.diag(G), 0.0, None))
    inverse = np.where(norms > 1e-12 * max(float(norms.max(initial=0.0)), 1e-300), 1.0 / np.maximum(norms, 1e-300), 0.0)
    unit_gramian = G * np.outer(inverse, inverse)
    v = inverse * (np.linalg.pinv(unit_gramian, rcond=rcond, hermitian=True) @ np.ones(len(G)))
    squared_norm = float(v @ G @ v)
    if not squared_norm > 0:
        return np.zeros(len(G))
    return float(np.ones(len(G)) @ G @ v) / squared_norm * v


@BALANCERS.register("conflict_free")
class ConFIG(GramianAggregator):
    """ConFIG (Liu et al., ICLR 2025): an update with the same positive cosine to every task gradient.

    Its direction solves ``u_i^T g_u = 1`` for all unit gradients u_i (minimum-norm solution by the
    pseudo-inverse) and its length is the sum of the task gradients' projections on that direction
    (the paper's length rule). Returned as task weights on the Gramian (:func:`config_weights`).
    """

    output = "weights"

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        rcond = 10 * jacobian.shape[0] * float(torch.finfo(jacobian.dtype).eps)
        return self.to_weights(config_weights(self.host_gramian(jacobian), rcond), jacobian)

"""Aligned-MTL: aligning the task gradients' principal components (Senushkin et al., CVPR 2023)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.errors import choices_error

ScaleMode = Literal["min", "median", "rmse"]


def balance_transformation(G: np.ndarray, scale_mode: ScaleMode = "min", eps: float = 2.2e-16) -> np.ndarray:
    """B (T x T) such that the aligned gradients ``J^T B`` are orthogonal with equal norms (Eq. 9).

    With ``G = V diag(lambda) V^T`` restricted to its numerical rank r, ``B = sqrt(s) V diag(lambda)^{-1/2} V^T``,
    so ``B G B = s V V^T``: every non-zero eigenvalue of the aligned Gramian equals s, condition number 1.
    The scale s is the smallest eigenvalue (``min``, the paper's choice: the largest stable step), their
    median or their mean (``rmse``). With rank 0 (all gradients zero) B is the identity.
    """
    eigenvalues, vectors = np.linalg.eigh(0.5 * (G + G.T))
    tolerance = float(eigenvalues.max(initial=0.0)) * len(G) * eps
    keep = eigenvalues > tolerance
    if not keep.any():
        return np.eye(len(G))
    eigenvalues, vectors = eigenvalues[keep], vectors[:, keep]
    if scale_mode == "min":
        scale = eigenvalues.min()
    elif scale_mode == "median":
        scale = np.median(eigenvalues)
    else:
        scale = eigenvalues.mean()
    return np.sqrt(scale) * (vectors / np.sqrt(eigenvalues)) @ vectors.T


@BALANCERS.register("aligned_mtl")
class AlignedMTL(GramianAggregator):
    """Aligned-MTL (Senushkin et al., CVPR 2023).

    The Jacobian is replaced by its aligned version ``B^T J`` (principal components rescaled to one
    common singular value, so the linear system has condition number 1) and the update is the sum of
    the aligned task gradients, ``J^T B 1``: weights ``B 1`` (the authors' code sums over tasks).
    ``rep_grad=true`` is the paper's Aligned-MTL-UB, which aligns the gradients of the shared
    representation instead of the shared parameters.
    """

    output = "weights"

    def __init__(
        self,
        tasks: Sequence[str],
        scale_mode: ScaleMode = "min",
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        if scale_mode not in ("min", "median", "rmse"):
            raise choices_error("balancer.scale_mode", scale_mode, ["min", "median", "rmse"])
        self.scale_mode = scale_mode

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        eps = float(torch.finfo(jacobian.dtype).eps)
        B = balance_transformation(self.host_gramian(jacobian), self.scale_mode, eps)
        return self.to_weights(B.sum(axis=1), jacobian)

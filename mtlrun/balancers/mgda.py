"""MGDA: the min-norm point of the convex hull of the task gradients (Sener & Koltun, NeurIPS 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext, select_present
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.balancers.solvers import SolverError, min_norm_weights
from mtlrun.errors import choices_error

Normalization = Literal["none", "l2", "loss", "loss+"]


@BALANCERS.register("mgda")
class MGDA(GramianAggregator):
    """Multiple-gradient descent as multi-objective optimisation (Sener & Koltun, NeurIPS 2018).

    Weights ``w = argmin_{w in simplex} ||sum_t w_t g_t / n_t||^2`` (Eq. 3), where ``n_t`` is the
    gradient normaliser of the authors' code (``none``: 1, ``l2``: ||g_t||, ``loss``: L_t, ``loss+``:
    L_t ||g_t||; the paper itself uses none). As in that code the weights multiply the raw losses.
    Solved exactly: closed form for two tasks (Alg. 1), Lawson-Hanson NNLS for more (instead of the
    paper's Frank-Wolfe, Alg. 2, which is approximate). ``rep_grad=true`` is MGDA-UB (Section 3.3):
    the gradients are those of the shared representation.
    """

    output = "weights"

    def __init__(
        self,
        tasks: Sequence[str],
        normalization: Normalization = "none",
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        if normalization not in ("none", "l2", "loss", "loss+"):
            raise choices_error("balancer.normalization", normalization, ["none", "l2", "loss", "loss+"])
        self.normalization = normalization

    def normalizers(self, G: np.ndarray, losses: Tensor | None) -> np.ndarray:
        """``n_t`` for the tasks of G; ``losses`` are theirs (needed by the ``loss`` normalisations)."""
        norms = np.sqrt(np.clip(np.diag(G), 0.0, None))
        if self.normalization == "none":
            return np.ones(len(G))
        if self.normalization == "l2":
            scale = norms
        else:
            if losses is None:
                raise ValueError(f"mgda normalization={self.normalization} needs the step's losses")
            values = losses.to("cpu", torch.float64).numpy()
            scale = values if self.normalization == "loss" else values * norms
        return np.where(scale > 1e-12, scale, 1.0)

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        G = self.host_gramian(jacobian)
        n = self.normalizers(G, None if ctx.losses is None else select_present(ctx.losses, ctx.present))
        try:
            weights = min_norm_weights(G / np.outer(n, n))
        except SolverError as ex:
            # fallback: the smallest-norm vertex of the hull (the best single normalised task gradient)
            self.solver_failed("mgda_solver_failed", f"mgda: {ex}; using the smallest-norm task gradient")
            weights = np.eye(len(G))[int(np.argmin(np.diag(G) / n**2))]
        return self.to_weights(weights, jacobian)

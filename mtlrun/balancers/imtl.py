"""IMTL: impartial multi-task learning (Liu et al., ICLR 2021): IMTL-G, IMTL-L and their hybrid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from mtlrun.balancers.base import BALANCERS, BalanceInfo, StepContext
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad
from mtlrun.errors import choices_error

Mode = Literal["gradient", "loss", "hybrid"]


def imtl_g_weights(G: np.ndarray, rcond: float = 1e-10) -> np.ndarray | None:
    """IMTL-G weights: sum to 1 and give ``g = J^T w`` equal projections on every unit gradient u_t.

    ``g . u_t = (G w)_t / ||g_t||`` is the same for all t iff ``G w`` is proportional to the vector of
    gradient norms d, so ``w = G^+ d / 1^T G^+ d``: the paper's closed form (Eq. 7) written on the Gramian,
    with the pseudo-inverse covering linearly dependent gradients. None when ``1^T G^+ d`` vanishes.
    """
    norms = np.sqrt(np.clip(np.diag(G), 0.0, None))
    v = np.linalg.pinv(G, rcond=rcond, hermitian=True) @ norms
    total = float(v.sum())
    if not abs(total) > 1e-12 * max(1.0, float(np.abs(v).sum())):
        return None
    return v / total


@BALANCERS.register("imtl")
class IMTL(GramianAggregator):
    """Impartial multi-task learning (Liu et al., ICLR 2021).

    - ``gradient`` (IMTL-G): weights from :func:`imtl_g_weights` on the task gradients.
    - ``loss`` (IMTL-L): each loss is scaled as ``e^{s_t} L_t - s_t`` with learnable ``s_t``
      (``nn.Parameter`` s, optimised with the model), which drives every scaled loss towards 1 (Eq. 3);
      one plain backward.
    - ``hybrid`` (IMTL, the paper's main method): IMTL-G applied to the gradients of the IMTL-L scaled
      losses; the scales get their own IMTL-L gradient ``e^{s_t} L_t - 1``.
    The paper computes IMTL-G on the shared representation's gradients: ``rep_grad=true``.
    Reported weights are the effective weights on the raw losses.
    """

    output = "weights"

    def __init__(
        self,
        tasks: Sequence[str],
        mode: Mode = "hybrid",
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        if mode not in ("gradient", "loss", "hybrid"):
            raise choices_error("balancer.mode", mode, ["gradient", "loss", "hybrid"])
        self.mode = mode
        if mode == "loss":
            self.needs_representation = False
        if mode in ("loss", "hybrid"):
            self.log_scales = nn.Parameter(torch.zeros(self.num_tasks))

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        if self.mode == "gradient":
            return super().backward(losses, ctx)
        stacked = self.stack(losses)
        scales = self.log_scales.exp()
        if self.mode == "loss":
            terms = scales * stacked - self.log_scales
            (terms if ctx.present is None else terms * ctx.present.to(terms)).sum().backward()
            return BalanceInfo(weights=scales.detach())
        fixed = scales.detach()
        info = super().backward({t: fixed[i] * losses[t] for i, t in enumerate(self.tasks)}, ctx)
        scale_grad = fixed * stacked.detach() - 1.0  # an absent task's scale does not move
        accumulate_grad([self.log_scales], [scale_grad if ctx.present is None else scale_grad * ctx.present])
        if info.weights is not None:
            info.weights = info.weights * fixed
        if info.jacobian is not None:  # J of the scaled losses: rows back to the losses given
            info.jacobian = info.jacobian / fixed.to(info.jacobian).unsqueeze(1)
        return info

    def returns_jacobian(self, step: int) -> bool:
        return self.mode != "loss" and super().returns_jacobian(step)

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        G = self.host_gramian(jacobian)
        weights = imtl_g_weights(G, rcond=10 * len(G) * float(torch.finfo(jacobian.dtype).eps))
        if weights is None:
            self.solver_failed("imtl_degenerate", "imtl: the IMTL-G system is degenerate; using equal weights 1/T")
            weights = np.full(len(G), 1.0 / len(G))
        return self.to_weights(weights, jacobian)

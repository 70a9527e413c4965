"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., ICML 2022)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.balancers.solvers import fair_weights_with_fallback
from mtlrun.errors import ConfigError


@BALANCERS.register("nash_mtl")
class NashMTL(GramianAggregator):
    """Nash bargaining over the update direction (Navon et al., ICML 2022).

    The weights alpha > 0 solve ``G alpha = 1/alpha`` elementwise (Theorem 5.1: the Nash bargaining
    solution ``d = J^T alpha``). The paper approximates it with a sequence of convex problems (CCP,
    cvxpy); here it is solved to machine precision by damped Newton on the equivalent strictly convex
    problem ``min 1/2 a^T G a - sum log a`` (:func:`mtlrun.balancers.solvers.fair_weights`). When no
    positive solution exists (linearly dependent gradients with a non-negative null combination) the
    step warns and uses the solution for the ridge-regularised Gramian ``G + 1e-4 trace(G)/T I``.
    ``max_norm > 0`` scales alpha so that ``||J^T alpha|| <= max_norm`` (the paper's code clips the shared
    gradient norm the same way). ``update_every`` is the paper's ``update_weights_every``.
    """

    output = "weights"

    def __init__(
        self,
        tasks: Sequence[str],
        max_norm: float = 1.0,
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        if max_norm < 0:
            raise ConfigError(f"balancer.max_norm={max_norm} must be >= 0 (0 disables the clipping)")
        self.max_norm = max_norm

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        G = self.host_gramian(jacobian)
        alpha, failure = fair_weights_with_fallback(G, 1.0)
        if failure is not None:
            self.solver_failed("nash_mtl_solver_failed", f"nash_mtl: {failure}; using the ridge-regularised solution")
        if self.max_norm > 0:
            norm = float(np.sqrt(max(alpha @ G @ alpha, 0.0)))
            if norm > self.max_norm:
                alpha = alpha * (self.max_norm / norm)
        return self.to_weights(alpha, jacobian)

"""CAGrad: conflict-averse gradient descent (Liu et al., NeurIPS 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.balancers.solvers import SolverError, cagrad_weights
from mtlrun.errors import ConfigError


@BALANCERS.register("cagrad")
class CAGrad(GramianAggregator):
    """Conflict-averse gradient descent (Liu et al., NeurIPS 2021).

    The update d maximises the worst task improvement ``min_i g_i^T d`` within the ball
    ``||d - g0|| <= c ||g0||`` around the mean gradient g0. Its dual (Eq. 5) is
    ``min_{w in simplex} g_w^T g0 + c ||g0|| ||g_w||`` with ``g_w = J^T w``, and then
    ``d = g0 + (c ||g0|| / ||g_w||) g_w`` (Algorithm 1). The dual is solved exactly on the Gramian
    (see :func:`mtlrun.balancers.solvers.cagrad_weights`) rather than with SLSQP as in the authors' code.
    ``rescale`` follows that code: 0 keeps d, 1 divides it by ``1 + c^2`` (their default), 2 by ``1 + c``.
    """

    output = "weights"

    def __init__(
        self,
        tasks: Sequence[str],
        c: float = 0.4,
        rescale: int = 1,
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        if c < 0:
            raise ConfigError(f"balancer.c={c} must be >= 0")
        if rescale not in (0, 1, 2):
            raise ConfigError(f"balancer.rescale={rescale} is not valid; choose one of: 0, 1, 2")
        self.c, self.rescale = c, rescale

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        T = jacobian.shape[0]
        try:
            w, ratio = cagrad_weights(self.host_gramian(jacobian), self.c)
        except (SolverError, ValueError, RuntimeError) as ex:
            # fallback: the centre of the ball, i.e. the mean gradient (CAGrad with c = 0)
            self.solver_failed("cagrad_solver_failed", f"cagrad: dual not solved ({ex}); using the mean gradient")
            w, ratio = np.zeros(T), 0.0
        weights = np.full(T, 1.0 / T) + ratio * w
        if self.rescale == 1:
            weights = weights / (1.0 + self.c**2)
        elif self.rescale == 2:
            weights = weights / (1.0 + self.c)
        return self.to_weights(weights, jacobian)

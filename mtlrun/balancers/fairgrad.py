"""FairGrad: fair resource allocation in multi-task learning (Ban & Ji, ICML 2024)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.balancers.solvers import fair_weights_with_fallback
from mtlrun.errors import ConfigError


@BALANCERS.register("fairgrad")
class FairGrad(GramianAggregator):
    """Alpha-fair allocation of the update over the task improvements (Ban & Ji, ICML 2024).

    Maximising the alpha-fair utility of the improvements ``g_i^T d`` gives ``d = J^T w`` with
    ``G w = w^(-1/alpha)`` elementwise (Section 3.2); alpha=1 is proportional fairness (Nash-MTL's
    condition) and large alpha approaches max-min fairness. Solved by damped Newton on the equivalent
    strictly convex potential (the authors' code uses scipy's least_squares); on failure the step warns
    and solves the ridge-regularised problem, as nash_mtl does. alpha=2 is the authors' setting.
    """

    output = "weights"

    def __init__(
        self,
        tasks: Sequence[str],
        alpha: float = 2.0,
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        if not alpha > 0:
            raise ConfigError(f"balancer.alpha={alpha} must be > 0 (alpha=0 is equal weighting: use balancer=ew)")
        self.alpha = alpha

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        weights, failure = fair_weights_with_fallback(self.host_gramian(jacobian), self.alpha)
        if failure is not None:
            self.solver_failed("fairgrad_solver_failed", f"fairgrad: {failure}; using the ridge-regularised solution")
        return self.to_weights(weights, jacobian)

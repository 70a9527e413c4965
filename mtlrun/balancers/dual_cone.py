"""UPGrad and DualProj: projections onto the dual cone of the task gradients (Quinton & Rey, 2024)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.solvers import project_to_dual_cone


@BALANCERS.register("upgrad")
class UPGrad(GramianAggregator):
    """Unconflicting projection of gradients (Quinton & Rey, 2024, "Jacobian descent for
    multi-objective optimization", Eq. 5).

    Each task gradient is projected onto the dual cone ``{x : J x >= 0}`` (the directions that do not
    increase any loss to first order) and the projections are averaged. The projection of ``J^T u`` is
    ``J^T v`` with ``v = argmin_{v >= u} v^T G v`` (their Proposition 1), solved exactly as a
    non-negative least-squares problem on the Gramian; the update has a non-negative inner product
    with every task gradient.
    """

    output = "weights"

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        G = self.host_gramian(jacobian)
        projected = project_to_dual_cone(G, np.eye(len(G)))
        return self.to_weights(projected.mean(axis=0), jacobian)


@BALANCERS.register("dualproj")
class DualProj(GramianAggregator):
    """DualProj (Quinton & Rey, 2024): the mean gradient projected onto the dual cone of the task
    gradients, ``J^T v`` with ``v = argmin_{v >= 1/T} v^T G v``, solved exactly like UPGrad's projections.
    """

    output = "weights"

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        G = self.host_gramian(jacobian)
        projected = project_to_dual_cone(G, np.full((1, len(G)), 1.0 / len(G)))
        return self.to_weights(projected[0], jacobian)

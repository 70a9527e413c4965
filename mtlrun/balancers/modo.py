"""MoDo: multi-objective gradient with double sampling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, StepContext
from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad, task_jacobian
from mtlrun.balancers.lookahead import project_simplex
from mtlrun.errors import ConfigError
from mtlrun.registry import positive


@BALANCERS.register("modo")
class MoDo(Balancer):
    """Multi-objective gradient with Double sampling (Chen, Fernando, Ying & Chen, NeurIPS 2023,
    "Three-way trade-off in multi-objective learning: optimization, generalization and conflict-avoidance").

    MGDA's weights are tracked by one projected stochastic gradient step per iteration on
    ``1/2 ||J^T lam||^2 + rho/2 ||lam||^2`` over the simplex. Its gradient ``J^T J lam`` is estimated
    without bias by *double sampling*: two independent batches z1, z2 give

        lam_{t+1} = Proj_simplex(lam_t - gamma (J_z1 J_z2^T lam_t + rho lam_t)),

    and a third batch z3 (the step's own batch) gives the update ``d = J_z3^T lam_{t+1}``. Task-specific
    (head) parameters get their plain task gradient on z3. ``lam`` persists across steps (a buffer).
    """

    uses_task_gradients = True

    batches_per_step = 3

    def __init__(
        self, tasks: Sequence[str], gamma: float = 1e-3, rho: float = 0.1, jacobian_mode: JacobianMode = "auto"
    ) -> None:
        super().__init__(tasks)
        positive("balancer", gamma=gamma)
        if rho < 0:
            raise ConfigError(f"balancer.rho={rho} must be >= 0")
        self.gamma, self.rho, self.jacobian_mode = gamma, rho, jacobian_mode
        self.register_buffer("lam", torch.full((self.num_tasks,), 1.0 / self.num_tasks))

    def context_needs(self) -> dict[str, str]:
        return {"compute_losses": "it takes task Jacobians on two more batches"}

    def returns_jacobian(self, step: int) -> bool:
        return True  # J_z3, on the step's own batch

    def update_weights(self, jac_z1: Tensor, jac_z2: Tensor) -> Tensor:
        """One double-sampled projected step on lam from two independent Jacobians (T, P)."""
        lam = self.lam.to(jac_z1)
        grad = jac_z1 @ (jac_z2.T @ lam) + self.rho * lam
        lam = project_simplex(lam - self.gamma * grad).detach()
        self.lam.copy_(lam)
        return lam

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        if len(ctx.extra_batches) < 2 or ctx.compute_losses is None:
            raise ConfigError("balancer=modo needs three batches per step and a loss closure from the trainer")
        shared = [p for p in ctx.shared_params if p.requires_grad]
        own = [ctx.task_params[t] for t in self.tasks]
        jac_z3 = task_jacobian(self.task_losses(losses), shared, own, mode=self.jacobian_mode)
        jac_z1 = task_jacobian(
            self.task_losses(ctx.compute_losses(ctx.extra_batches[0])), shared, mode=self.jacobian_mode
        )
        jac_z2 = task_jacobian(
            self.task_losses(ctx.compute_losses(ctx.extra_batches[1])), shared, mode=self.jacobian_mode
        )
        if ctx.collective is not None:  # data parallel: the three global Jacobians
            jac_z1, jac_z2, jac_z3 = (ctx.collective.sum(j) for j in (jac_z1, jac_z2, jac_z3))
        lam = self.update_weights(jac_z1, jac_z2)
        if ctx.present is not None:  # an absent task's row of J_z3 is zero: give it weight 0 too
            lam = lam * ctx.present.to(lam)
        accumulate_grad(shared, lam @ jac_z3)
        if ctx.collective is not None:
            ctx.collective.mark_synced(shared)
        return BalanceInfo(weights=lam, jacobian=jac_z3)

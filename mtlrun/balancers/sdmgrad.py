"""SDMGrad: stochastic direction-oriented multi-objective gradient descent."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, StepContext
from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad, task_jacobian
from mtlrun.balancers.lookahead import project_simplex
from mtlrun.errors import ConfigError
from mtlrun.registry import positive


@BALANCERS.register("sdmgrad")
class SDMGrad(Balancer):
    """Stochastic Direction-oriented Multi-objective Gradient descent (Xiao, Ban & Ji, NeurIPS 2023).

    The update direction is MGDA's, regularised towards the mean gradient g0 = J^T 1/T:

        w* = argmin_{w in simplex} 1/2 ||J^T w + lam g0||^2 (+ rho/2 ||w||^2),  d = (J^T w* + lam g0) / (1 + lam)

    so ``lam -> inf`` gives the mean direction (equal weighting) and ``lam = 0`` MGDA's min-norm
    direction. Each step draws three independent batches (Algorithm 1): two, xi and xi', give an
    unbiased stochastic gradient of the w-objective, ``G_xi^T (G_xi' w + lam g0_xi') + rho w``, on which
    w takes ``niter`` projected SGD steps with momentum (warm-started from the previous step's w);
    the third, zeta (the step's own batch), gives the Jacobian of the update. The w-objective is
    rescaled by the mean task-gradient norm squared, which leaves its minimiser unchanged and makes
    ``w_lr`` scale-free, as the authors' implementation does. Task-specific (head) parameters get
    their plain task gradient on zeta.
    """

    uses_task_gradients = True

    batches_per_step = 3

    def __init__(
        self,
        tasks: Sequence[str],
        lam: float = 0.3,
        niter: int = 20,
        w_lr: float = 10.0,
        w_momentum: float = 0.5,
        rho: float = 0.0,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks)
        if lam < 0:
            raise ConfigError(f"balancer.lam={lam} must be >= 0")
        if rho < 0:
            raise ConfigError(f"balancer.rho={rho} must be >= 0")
        if not 0 <= w_momentum < 1:
            raise ConfigError(f"balancer.w_momentum={w_momentum} must lie in [0, 1)")
        positive("balancer", niter=niter, w_lr=w_lr)
        self.lam, self.niter, self.w_lr, self.w_momentum, self.rho = lam, niter, w_lr, w_momentum, rho
        self.jacobian_mode = jacobian_mode
        self.register_buffer("w", torch.full((self.num_tasks,), 1.0 / self.num_tasks))

    def context_needs(self) -> dict[str, str]:
        return {"compute_losses": "it takes task Jacobians on two more batches"}

    def returns_jacobian(self, step: int) -> bool:
        return True  # J_zeta, on the step's own batch

    def solve_weights(self, jac_xi: Tensor, jac_xi2: Tensor) -> Tensor:
        """Update and return w from two independent Jacobians (T, P) with ``niter`` projected momentum steps."""
        cross = jac_xi @ jac_xi2.T  # <g_i(xi), g_j(xi')>
        scale = (jac_xi.norm(dim=1) * jac_xi2.norm(dim=1)).mean().clamp(min=1e-12)
        cross = cross / scale
        towards_mean = cross.mean(dim=1)  # <g_i(xi), g0(xi')>
        w = self.w.to(cross)
        velocity = torch.zeros_like(w)
        for _ in range(self.niter):
            grad = cross @ w + self.lam * towards_mean + self.rho * w
            velocity = self.w_momentum * velocity + grad
            w = project_simplex(w - self.w_lr * velocity)
        self.w.copy_(w.detach())
        return w.detach()

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        if len(ctx.extra_batches) < 2 or ctx.compute_losses is None:
            raise ConfigError("balancer=sdmgrad needs three batches per step and a loss closure from the trainer")
        shared = [p for p in ctx.shared_params if p.requires_grad]
        own = [ctx.task_params[t] for t in self.tasks]
        jac_zeta = task_jacobian(self.task_losses(losses), shared, own, mode=self.jacobian_mode)
        jac_xi = task_jacobian(
            self.task_losses(ctx.compute_losses(ctx.extra_batches[0])), shared, mode=self.jacobian_mode
        )
        jac_xi2 = task_jacobian(
            self.task_losses(ctx.compute_losses(ctx.extra_batches[1])), shared, mode=self.jacobian_mode
        )
        if ctx.collective is not None:  # data parallel: the three global Jacobians
            jac_xi, jac_xi2, jac_zeta = (ctx.collective.sum(j) for j in (jac_xi, jac_xi2, jac_zeta))
        w = self.solve_weights(jac_xi, jac_xi2)
        weights = (w + self.lam / self.num_tasks) / (1.0 + self.lam)  # d = J_zeta^T weights
        if ctx.present is not None:  # an absent task's row of J_zeta is zero: give it weight 0 too
            weights = weights * ctx.present.to(weights)
        accumulate_grad(shared, weights @ jac_zeta)
        if ctx.collective is not None:
            ctx.collective.mark_synced(shared)
        return BalanceInfo(weights=weights, jacobian=jac_zeta)

"""ExcessMTL (``excess_mtl``): robust task weights from estimated excess risks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, BalanceInfo, GradientAggregator, StepContext
from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad, task_jacobian
from mtlrun.balancers.reweighting import weighted_backward
from mtlrun.errors import ConfigError
from mtlrun.registry import positive

#: keeps the AdaGrad preconditioner invertible, as in the authors' code
EPS = 1e-7


@BALANCERS.register("excess_mtl")
class ExcessMTL(GradientAggregator):
    """ExcessMTL (He, Zhou, Zhang, Yun, Xu, Zeng, Chilimbi & Zhao, "Robust Multi-Task Learning with Excess
    Risks", ICML 2024), following the authors' implementation.

    Weights go up for tasks far from their own optimum, not for tasks with a large loss (which may be
    irreducible noise). The excess risk of task t is estimated with a diagonal, AdaGrad-style Hessian
    approximation built from the task's gradient history:

        H_t = diag(sqrt(sum_{k<=now} g_t(k)^2 + eps)),   e_t = g_t^T H_t^{-1} g_t.

    The first estimate ``e_t(0)`` is kept as the scale, and the weights follow exponentiated gradient
    ascent (mirror ascent on the simplex, rescaled to sum to T):

        w_t <- w_t * exp(robust_step_size * e_t / e_t(0)),   w <- T w / sum(w).

    The model update is ``sum_t w_t grad L_t`` for every parameter, task heads included (as the authors'
    weighted backward). ``g_t`` is taken on the shared parameters, or with ``rep_grad=true`` on the shared
    representation summed over the batch (as in the authors' code). With ``update_every=N`` the
    statistics and weights are updated every N steps and reused in between. State (weights, gradient
    square sums, first estimate) is checkpointed.
    """

    resizable_buffers = ("cached_weights", "grad_sq_sum")

    def __init__(
        self,
        tasks: Sequence[str],
        robust_step_size: float = 1e-2,
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        positive("balancer", robust_step_size=robust_step_size)
        self.robust_step_size = robust_step_size
        self.register_buffer("loss_weights", torch.ones(self.num_tasks))
        self.register_buffer("initial_excess", torch.ones(self.num_tasks))
        self.register_buffer("grad_sq_sum", torch.zeros(0))
        self._initialised = False

    def excess_risks(self, grads: Tensor) -> Tensor:
        """Add ``grads`` (T, P) to the AdaGrad statistics and return ``e_t = g_t^T H_t^{-1} g_t``."""
        if self.grad_sq_sum.shape != grads.shape:
            self.grad_sq_sum = torch.zeros_like(grads)
        self.grad_sq_sum = self.grad_sq_sum.to(grads) + grads.square()
        return (grads.square() / torch.sqrt(self.grad_sq_sum + EPS)).sum(dim=1)

    def aggregate(self, jacobian: Tensor) -> Tensor:
        """Update and return the task weights (T,) from the per-task gradients ``jacobian`` (T, P)."""
        excess = self.excess_risks(jacobian.detach())
        if not self._initialised:
            self.initial_excess.copy_(excess)
            self._initialised = True
            return self.loss_weights.clone()
        scale = self.initial_excess.to(excess)
        relative = torch.where(scale > 0, excess / scale, torch.zeros_like(excess))
        updated = self.loss_weights * torch.exp(self.robust_step_size * relative)
        self.loss_weights.copy_(self.num_tasks * updated / updated.sum())
        return self.loss_weights.clone()

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        if self.cached_weights.numel() == self.num_tasks and ctx.step % self.update_every != 0:
            weights = self.cached_weights.to(stacked)
            weighted_backward(weights, stacked, ctx)
            return BalanceInfo(weights=weights)
        if self.rep_grad:
            if ctx.representation is None or ctx.representation_input is None:
                raise ConfigError("balancer.rep_grad=true needs an architecture with a shared representation")
            inputs = [ctx.representation_input]
        else:
            inputs = [p for p in ctx.shared_params if p.requires_grad]
        jac = task_jacobian(stacked, inputs, mode=self.jacobian_mode, retain_graph=True)
        # with rep_grad, one gradient per sample: their batch sum is the task's gradient statistic
        per_task = jac.view(self.num_tasks, inputs[0].shape[0], -1).sum(1) if self.rep_grad else jac
        weights = self.aggregate(per_task).to(stacked)
        own = [p for t in self.tasks for p in ctx.task_params[t] if p.requires_grad]
        if own:
            grads = torch.autograd.grad((weights * stacked).sum(), own, allow_unused=True)
            accumulate_grad(own, grads)
        direction = weights @ jac
        if self.rep_grad:
            ctx.representation.backward(direction.view_as(ctx.representation))
        else:
            accumulate_grad(inputs, direction)
        if self.update_every > 1:
            self.cached_weights = weights.detach().clone()
        return BalanceInfo(weights=weights.detach(), jacobian=None if self.rep_grad else jac)

    def get_extra_state(self) -> dict[str, Any]:
        return {"initialised": self._initialised}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._initialised = bool(state["initialised"])

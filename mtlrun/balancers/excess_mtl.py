"""ExcessMTL (``excess_mtl``): robust task weights from estimated excess risks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, GradientAggregator, StepContext, present_rows
from mtlrun.balancers.jacobian import JacobianMode
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

    output = "weights"
    head_gradients = "weighted"  # the authors' weighted backward: heads get w_t grad L_t too
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
        #: which tasks have their first excess estimate (the scale); checkpointed as extra state
        self.register_buffer("initialised", torch.zeros(self.num_tasks, dtype=torch.bool), persistent=False)

    def excess_risks(self, grads: Tensor, rows: Tensor | None = None) -> Tensor:
        """Add ``grads`` (T', P) to the AdaGrad statistics of the tasks ``rows`` (all when None) and
        return their ``e_t = g_t^T H_t^{-1} g_t``; the statistics of other tasks stay as they were."""
        shape = (self.num_tasks, grads.shape[1])
        if self.grad_sq_sum.shape != shape:
            self.grad_sq_sum = torch.zeros(shape, dtype=grads.dtype, device=grads.device)
        if rows is None:
            self.grad_sq_sum = self.grad_sq_sum.to(grads) + grads.square()
            return (grads.square() / torch.sqrt(self.grad_sq_sum + EPS)).sum(dim=1)
        self.grad_sq_sum = self.grad_sq_sum.to(grads)
        self.grad_sq_sum[rows] += grads.square()
        return (grads.square() / torch.sqrt(self.grad_sq_sum[rows] + EPS)).sum(dim=1)

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        """Update and return the task weights of the present tasks from their gradients ``jacobian``.

        With ``rep_grad`` the rows hold one gradient per sample; their batch sum is the statistic.
        """
        grads = jacobian.detach()
        if self.rep_grad:
            assert ctx.representation_input is not None
            grads = grads.view(grads.shape[0], ctx.representation_input.shape[0], -1).sum(1)
        rows = present_rows(ctx.present)
        excess = self.excess_risks(grads, rows)
        every = slice(None) if rows is None else rows
        fresh = ~self.initialised[every]
        self.initial_excess[every] = torch.where(fresh, excess.to(self.initial_excess), self.initial_excess[every])
        self.initialised[every] = True
        if bool(fresh.all()):  # the first estimate is the scale: the weights do not move yet
            return self.loss_weights[every].clone()
        scale = self.initial_excess[every].to(excess)
        relative = torch.where(scale > 0, excess / scale, torch.zeros_like(excess))
        relative = torch.where(fresh.to(relative.device), torch.zeros_like(relative), relative)
        current = self.loss_weights[every]
        updated = current * torch.exp(self.robust_step_size * relative)
        # the weights sum to T; on a batch with absent tasks the present ones keep their share
        total = self.num_tasks if rows is None else current.sum()
        self.loss_weights[every] = total * updated / updated.sum()
        return self.loss_weights[every].clone()

    def get_extra_state(self) -> dict[str, Any]:
        return {"initialised": self.initialised.tolist()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        flags = state["initialised"]
        flags = [bool(flags)] * self.num_tasks if isinstance(flags, bool) else [bool(f) for f in flags]
        self.initialised.copy_(torch.tensor(flags, dtype=torch.bool))

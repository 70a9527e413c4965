"""Dual-balancing multi-task learning (``db_mtl``): log losses, then equal gradient magnitudes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, StepContext, expand_present, present_rows
from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad, task_jacobian
from mtlrun.errors import ConfigError, choices_error
from mtlrun.registry import in_range

#: keeps ``log L`` finite, as in the authors' code
EPS = 1e-8


@BALANCERS.register("db_mtl")
class DualBalancing(Balancer):
    """DB-MTL (Lin et al., "Dual-Balancing for Multi-Task Learning", arXiv:2308.12029, 2023).

    Loss scale: every task loss is log-transformed, ``log(L_t + eps)``; task-specific parameters get the
    plain gradient of their task's log loss. Gradient magnitude, on the shared parameters: an EMA of
    each task's log-loss gradient (k counts steps from 1),

        g_t <- (1 - b_k) grad log L_t + b_k g_t,   b_k = beta / k^beta_sigma,   g_t = 0 at the start,

    then every task's EMA is rescaled to the largest norm, and the update is their sum:

        d = sum_t (max_s ||g_s|| / ||g_t||) g_t.

    Defaults ``beta=0.9, beta_sigma=0`` are those of the authors' LibMTL implementation. The reported
    weights are the scale factors ``max_s ||g_s|| / ||g_t||`` (>= 1) on the EMA gradients of the log
    losses. The EMA buffer (T x P) is checkpointed. There is no ``update_every``: the update is a
    direction built from the EMA, not a weight vector one could reuse; and no ``rep_grad`` (as in the
    authors' code). A task without labels in a batch (``ctx.present``) keeps its EMA and gets scale 0.
    Data parallel: the Jacobian is all-reduced first, so every rank keeps the same EMA.
    """

    uses_task_gradients = True

    resizable_buffers = ("grad_ema",)

    def __init__(
        self, tasks: Sequence[str], beta: float = 0.9, beta_sigma: float = 0.0, jacobian_mode: JacobianMode = "auto"
    ) -> None:
        super().__init__(tasks)
        in_range("balancer", "beta", beta, 0.0, 1.0)
        if beta_sigma < 0:
            raise ConfigError(f"balancer.beta_sigma={beta_sigma} must be >= 0")
        if jacobian_mode not in ("auto", "loop", "batched"):
            raise choices_error("balancer.jacobian_mode", jacobian_mode, ["auto", "loop", "batched"])
        self.beta, self.beta_sigma, self.jacobian_mode = beta, beta_sigma, jacobian_mode
        self.register_buffer("grad_ema", torch.zeros(0))
        self._steps = 0

    def returns_jacobian(self, step: int) -> bool:
        return True  # the Jacobian of the log losses, rescaled row by row to that of the losses

    def backward(self, losses: dict[str, torch.Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        log_losses = [torch.log(loss + EPS) for loss in self.task_losses(losses)]
        own = [ctx.task_params[t] for t in self.tasks]
        jac = task_jacobian(log_losses, ctx.shared_params, own, mode=self.jacobian_mode)
        if ctx.collective is not None:  # data parallel: the global Jacobian (the losses are global means)
            jac = ctx.collective.sum(jac)
        self._steps += 1
        decay = self.beta / self._steps**self.beta_sigma
        if self.grad_ema.shape != jac.shape:
            self.grad_ema = torch.zeros_like(jac)
        rows = present_rows(ctx.present)
        if rows is None:
            self.grad_ema = jac + decay * (self.grad_ema.to(jac) - jac)
            norms = self.grad_ema.norm(dim=1)
            scales = norms.max() / (norms + EPS)
        else:  # an absent task's EMA stays as it was and does not enter the update
            ema = self.grad_ema.to(jac)
            ema[rows] = jac[rows] + decay * (ema[rows] - jac[rows])
            self.grad_ema = ema
            norms = ema[rows].norm(dim=1)
            scales = expand_present(norms.max() / (norms + EPS), ctx.present, self.num_tasks)
        shared = [p for p in ctx.shared_params if p.requires_grad]
        accumulate_grad(shared, scales @ self.grad_ema)
        if ctx.collective is not None:
            ctx.collective.mark_synced(shared)
        # d log(L + eps) = dL / (L + eps): rows rescaled back give the Jacobian of the losses themselves
        raw = jac * (stacked.detach() + EPS).unsqueeze(1)
        return BalanceInfo(weights=scales.detach(), jacobian=raw)

    def get_extra_state(self) -> dict[str, Any]:
        return {"steps": self._steps}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._steps = int(state["steps"])

"""Fast adaptive multitask optimisation (``famo``): balanced loss decrease at O(1) cost per step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, Batch, LossWeighting, StepContext, present_rows
from mtlrun.balancers.reweighting import BufferAdam
from mtlrun.errors import ConfigError
from mtlrun.registry import positive

#: keeps ``log(L - L*)`` finite, as in the official implementation
EPS = 1e-8


@BALANCERS.register("famo")
class FAMO(LossWeighting):
    """FAMO (Liu, Feng, Stone & Liu, NeurIPS 2023, Algorithm 1).

    Task weights ``z = softmax(xi)``. The model step minimises ``sum_t z_t log(L_t - L*_t) / c`` with
    ``c = sum_t z_t / (L_t - L*_t)`` held constant; its gradient is ``sum_t w_t grad L_t`` with

        w_t = z_t / (c (L_t - L*_t)),   sum_t w_t = 1,

    so the code back-propagates ``sum_t w_t L_t`` with ``w`` constant (the same gradient; the weights
    reported are ``w``). The logits then move to balance the *log-loss improvements*
    ``delta_t = log(L_t(theta_k) - L*_t) - log(L_t(theta_k+1) - L*_t)``:

        xi <- xi - w_lr * Adam(J_softmax(xi)^T delta + gamma * xi)

    (``torch.optim.Adam`` with ``weight_decay=gamma``, as in the official code). A task whose loss falls
    slowest gains weight. ``L*`` is ``min_losses`` (zeros by default, as in the official code).

    ``L_t(theta_k+1)`` needs the model after its step. ``xi_update`` chooses how to get it:

    - ``next_batch`` (default): the losses of the next step, on the next batch, stand for it; the previous
      step's losses are kept in a buffer and xi is updated at the start of the next step, before it is
      used. No extra forward pass: FAMO then costs what ``ew`` costs.
    - ``same_batch``: as the official training scripts, the previous batch is evaluated again (no
      gradient) with the updated model at the start of the next step. One extra forward per step (in
      training mode, as there: batch-norm statistics see that batch twice). The batch itself is not
      checkpointed, so the first update after a resume is skipped.

    ``min_losses``: one lower bound per task (in the run's task order), or null for zeros.

    A task without labels in a batch (``ctx.present``) gets weight 0 and the others share the unit
    mass; xi moves only for tasks present at both ends of a log-loss improvement (their softmax and Adam
    moments alone), so no ``log(0)`` is taken and an absent task's logit stays as it was.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        w_lr: float = 0.025,
        gamma: float = 1e-3,
        min_losses: list[float] | None = None,
        xi_update: Literal["next_batch", "same_batch"] = "next_batch",
    ) -> None:
        super().__init__(tasks)
        positive("balancer", w_lr=w_lr)
        if gamma < 0:
            raise ConfigError(f"balancer.gamma={gamma} must be >= 0")
        if min_losses is not None and len(min_losses) != self.num_tasks:
            raise ConfigError(
                f"balancer.min_losses has {len(min_losses)} values but the run has {self.num_tasks} tasks "
                f"({', '.join(self.tasks)})"
            )
        self.xi_update = xi_update
        T = self.num_tasks
        self.register_buffer("logits", torch.zeros(T))
        self.register_buffer("min_losses", torch.tensor([float(v) for v in (min_losses or [0.0] * T)]))
        self.register_buffer("previous_losses", torch.zeros(T))
        self.register_buffer("previous_present", torch.ones(T, dtype=torch.bool))
        self.optimizer = BufferAdam(T, lr=w_lr, weight_decay=gamma)
        self._has_previous = False
        self._previous_batch: Batch | None = None

    def context_needs(self) -> dict[str, str]:
        if self.xi_update != "same_batch":
            return {}
        why = "xi_update=same_batch evaluates the previous step's batch again after the update"
        return {"batch": why, "compute_losses": why}

    def log_gap(self, losses: Tensor) -> Tensor:
        """``log(L_t - L*_t)``, the quantity FAMO balances."""
        return (losses - self.min_losses.to(losses)).clamp_min(0.0).add(EPS).log()

    def update_logits(self, before: Tensor, after: Tensor, valid: Tensor | None = None) -> None:
        """One FAMO step on xi from the task losses before and after a model update; ``valid`` (bool,
        (T,)) restricts it to the tasks measured at both ends."""
        rows = present_rows(valid)
        if rows is not None and len(rows) == 0:
            return
        if rows is None:
            delta = self.log_gap(before.detach()) - self.log_gap(after.detach())
            z = torch.softmax(self.logits, dim=0)
            grad = z * (delta.to(z) - (z * delta.to(z)).sum())  # J_softmax(xi)^T delta (J is symmetric)
            self.optimizer.step(self.logits, grad)
            return
        delta = (self.log_gap(before.detach()) - self.log_gap(after.detach()))[rows]
        z = torch.softmax(self.logits[rows], dim=0)
        grad = torch.zeros_like(self.logits)
        grad[rows] = z * (delta.to(z) - (z * delta.to(z)).sum())
        self.optimizer.step(self.logits, grad, rows=rows)

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        current = losses.detach()
        present = ctx.present
        if self._has_previous:
            after = self._losses_after_step(current, ctx)
            if after is not None:
                valid = None
                if present is not None or not bool(self.previous_present.all()):
                    now = self.previous_present if self.xi_update == "same_batch" else present
                    valid = self.previous_present if now is None else self.previous_present & now
                self.update_logits(self.previous_losses, after, valid)
        z = torch.softmax(self.logits, dim=0).to(current)
        gap = (current - self.min_losses.to(current)).clamp_min(0.0) + EPS
        weights = z / gap
        if present is not None:
            weights = torch.where(present, weights, torch.zeros_like(weights))
        weights = weights / weights.sum()
        if present is None:
            self.previous_losses.copy_(current)
            self.previous_present.fill_(True)
        else:  # an absent task keeps the last loss it had
            self.previous_losses.copy_(torch.where(present, current, self.previous_losses))
            self.previous_present.copy_(present)
        self._has_previous = True
        self._previous_batch = ctx.batch
        return weights

    def _losses_after_step(self, current: Tensor, ctx: StepContext) -> Tensor | None:
        if self.xi_update == "next_batch":
            return current
        if self._previous_batch is None or ctx.compute_losses is None:
            return None
        with torch.no_grad():
            again = ctx.compute_losses(self._previous_batch)
        return self.stack(again).detach()

    def get_extra_state(self) -> dict[str, Any]:
        return {"has_previous": self._has_previous}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._has_previous = bool(state["has_previous"])
        self._previous_batch = None

"""GradNorm (``gradnorm``): learn task weights that equalise training rates via gradient norms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, StepContext, present_rows, weighted_backward
from mtlrun.balancers.jacobian import JacobianMode, task_jacobian
from mtlrun.balancers.reweighting import BufferAdam
from mtlrun.errors import ConfigError, choices_error
from mtlrun.models.encoders import StagedEncoder
from mtlrun.registry import positive

#: GradNorm's weights stay positive (the renormalisation would otherwise flip signs)
MIN_WEIGHT = 1e-6


def last_shared_parameters(model: nn.Module, shared: Sequence[nn.Parameter]) -> list[nn.Parameter]:
    """GradNorm's W: the shared parameters of the last stage of every staged encoder in ``model``
    (several for expert models); failing that, those of the last shared module that owns parameters."""
    shared_ids = {id(p) for p in shared if p.requires_grad}
    found = [
        p
        for module in model.modules()
        if isinstance(module, StagedEncoder) and len(module.stages)
        for p in module.stages[-1].parameters()
        if id(p) in shared_ids
    ]
    if found:
        return found
    owners = [
        own
        for module in model.modules()
        if (own := [p for p in module.parameters(recurse=False) if id(p) in shared_ids])
    ]
    return owners[-1] if owners else [p for p in shared if p.requires_grad]


@BALANCERS.register("gradnorm")
class GradNorm(Balancer):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018, Algorithm 1).

    The model minimises ``sum_t w_t L_t``. With ``G_t = ||grad_W (w_t L_t)||`` on the last shared layer W,
    the relative inverse training rate ``r_t = Ltilde_t / mean(Ltilde)``, ``Ltilde_t = L_t / L_t(0)`` (the
    losses at the first step), the weights descend

        L_grad = sum_t |G_t - mean(G) r_t^alpha|     (the target mean(G) r_t^alpha held constant)

    whose gradient is ``dL_grad/dw_t = ||grad_W L_t|| sign(G_t - target_t)`` (``G_t`` is linear in w_t, so no
    second-order backward is needed), and are then renormalised to sum to T. The weights are updated by
    their own Adam step (``lr``), not by the model optimiser: the paper leaves the weights' optimiser
    open, and Adam makes the step size independent of the scale of the gradient norms. They are kept
    >= 1e-6 before renormalising. Both updates use the same step's losses, as in the paper: the model step
    uses ``w(t)`` and the weights move to ``w(t+1)``.

    W is the last stage of the encoder (for expert models, of every expert); ``rep_grad=true`` uses the
    shared representation instead (the variant the paper suggests for speed). ``update_every=N`` updates
    the weights every N steps and keeps them in between. State (weights, L(0), Adam moments) is
    checkpointed. Data parallel: the norms are those of the global gradients on W (all-reduced; with
    ``rep_grad``, the squared norms of the ranks' disjoint rows summed).
    """

    uses_task_gradients = True

    def __init__(
        self,
        tasks: Sequence[str],
        alpha: float = 1.5,
        lr: float = 0.025,
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks)
        if alpha < 0:
            raise ConfigError(f"balancer.alpha={alpha} must be >= 0")
        positive("balancer", lr=lr)
        if update_every < 1:
            raise ConfigError(f"balancer.update_every={update_every} must be >= 1")
        if jacobian_mode not in ("auto", "loop", "batched"):
            raise choices_error("balancer.jacobian_mode", jacobian_mode, ["auto", "loop", "batched"])
        self.alpha, self.update_every, self.jacobian_mode = alpha, update_every, jacobian_mode
        self.rep_grad = rep_grad
        self.needs_representation = rep_grad
        self.register_buffer("task_weights", torch.ones(self.num_tasks))
        self.register_buffer("initial_losses", torch.ones(self.num_tasks))
        self.optimizer = BufferAdam(self.num_tasks, lr=lr)
        #: which tasks have their L_t(0) (the first step they were present); checkpointed as extra state
        self.register_buffer("has_initial", torch.zeros(self.num_tasks, dtype=torch.bool), persistent=False)

    def context_needs(self) -> dict[str, str]:
        return {} if self.rep_grad else {"model": "its W is the last shared layer of the model"}

    def returns_jacobian(self, step: int) -> bool:
        return False  # its Jacobian is on the last shared layer only

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        weights = self.task_weights.clone().to(stacked)
        if ctx.step % self.update_every == 0:
            self.update_weights(stacked, self._gradient_norms(self.task_losses(losses), ctx), ctx.present)
        weighted_backward(weights, stacked, ctx)
        return BalanceInfo(weights=weights)

    def _gradient_norms(self, task_losses: list[Tensor], ctx: StepContext) -> Tensor:
        """``||grad_W L_t||`` per task, on the last shared layer (or the representation)."""
        if self.rep_grad:
            if ctx.representation_input is None:
                raise ConfigError("balancer.rep_grad=true needs an architecture with a shared representation")
            inputs = [ctx.representation_input]
        else:
            inputs = last_shared_parameters(ctx.model, ctx.shared_params)
        jac = task_jacobian(task_losses, inputs, mode=self.jacobian_mode, retain_graph=True)
        if ctx.collective is None:
            return jac.norm(dim=1)
        if self.rep_grad:  # data parallel: the ranks' rows of the representation are disjoint
            return ctx.collective.sum(jac.square().sum(dim=1)).sqrt()
        return ctx.collective.sum(jac).norm(dim=1)  # data parallel: the global gradients on W

    @torch.no_grad()
    def update_weights(self, losses: Tensor, grad_norms: Tensor, present: Tensor | None = None) -> None:
        """One GradNorm step on the weights from this step's losses and per-task gradient norms.

        With absent tasks (``present``) the step is taken among the present ones: an absent task has no
        training rate, so its weight, ``L_t(0)`` and Adam moments stay as they were, and the present
        weights are renormalised to keep their share of T.
        """
        losses = losses.detach().to(self.task_weights)
        grad_norms = grad_norms.to(self.task_weights)
        rows = present_rows(present)
        if rows is None:
            if not bool(self.has_initial.all()):
                self.initial_losses.copy_(torch.where(self.has_initial, self.initial_losses, losses))
                self.has_initial.fill_(True)
            w = self.task_weights
            norms = w * grad_norms
            ratio = losses / self.initial_losses
            target = norms.mean() * (ratio / ratio.mean()) ** self.alpha
            self.optimizer.step(w, grad_norms * torch.sign(norms - target))
            w.clamp_(min=MIN_WEIGHT)
            w.mul_(self.num_tasks / w.sum())
            return
        fresh = ~self.has_initial[rows]
        self.initial_losses[rows] = torch.where(fresh, losses[rows], self.initial_losses[rows])
        self.has_initial[rows] = True
        w = self.task_weights[rows]
        share = w.sum()
        norms = w * grad_norms[rows]
        ratio = losses[rows] / self.initial_losses[rows]
        target = norms.mean() * (ratio / ratio.mean()) ** self.alpha
        grad = torch.zeros_like(self.task_weights)
        grad[rows] = grad_norms[rows] * torch.sign(norms - target)
        self.optimizer.step(self.task_weights, grad, rows=rows)
        w = self.task_weights[rows].clamp(min=MIN_WEIGHT)
        self.task_weights[rows] = w * (share / w.sum())

    def get_extra_state(self) -> dict[str, Any]:
        return {"has_initial": self.has_initial.tolist()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        flags = state["has_initial"]
        flags = [bool(flags)] * self.num_tasks if isinstance(flags, bool) else [bool(f) for f in flags]
        self.has_initial.copy_(torch.tensor(flags, dtype=torch.bool))

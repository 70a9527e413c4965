"""MOML: multi-objective meta learning of the task weights (bilevel, one inner step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, StepContext, present_rows
from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad, task_jacobian
from mtlrun.balancers.lookahead import (
    adam_update,
    columns_of,
    lookahead_params,
    register_adam,
    require_functional,
    trainable,
    upper_batch,
)
from mtlrun.balancers.solvers import SolverError, min_norm_weights
from mtlrun.errors import choices_error
from mtlrun.registry import positive


def softmax_jacobian(w: Tensor) -> Tensor:
    """d softmax(a) / d a = diag(w) - w w^T at w = softmax(a) (symmetric)."""
    return torch.diag(w) - torch.outer(w, w)


@BALANCERS.register("moml")
class MOML(Balancer):
    """Multi-Objective Meta Learning (Ye et al., NeurIPS 2021), applied to learning task weights.

    Lower level: the model minimises the weighted training loss ``f(a, theta) = sum_j w_j L_j^tr(theta)``
    with ``w = softmax(a)``, approximated by one gradient step ``theta'(a) = theta - eta grad_theta f``.
    Upper level: the task losses on held-out data, ``F_i(a) = L_i^up(theta'(a))``, a multi-objective
    problem in a. Since theta' is linear in w, each hypergradient is exact and first-order:

        dF_i/da = -eta * S J^tr grad L_i^up(theta'),   S = diag(w) - w w^T,  J^tr the (T x P) training Jacobian

    (over all model parameters). The T hypergradients are combined by MGDA (min-norm point of their
    convex hull), the logits a take one Adam step (``weight_lr``) along it, and the model steps on
    ``sum_j softmax(a)_j L_j^tr`` with the updated weights. Defaults follow the authors' multi-task
    implementation (eta = 0.1, Adam at 1e-3 on logits initialised to uniform weights); the upper level
    uses a validation batch (``upper_split=val``) or an independent training batch (``train``).
    Data parallel: both Jacobians are all-reduced (the upper batch is the global one, sharded).
    """

    #: its lookahead step uses raw gradients from autograd.grad, which a loss scale would distort
    supports_loss_scaling = False

    uses_task_gradients = True

    def __init__(
        self,
        tasks: Sequence[str],
        inner_lr: float = 0.1,
        weight_lr: float = 1e-3,
        upper_split: Literal["val", "train"] = "val",
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks)
        positive("balancer", inner_lr=inner_lr, weight_lr=weight_lr)
        if upper_split not in ("val", "train"):
            raise choices_error("balancer.upper_split", upper_split, ("train", "val"))
        self.inner_lr, self.weight_lr, self.upper_split = inner_lr, weight_lr, upper_split
        self.jacobian_mode = jacobian_mode
        self.batches_per_step = 2 if upper_split == "train" else 1
        self.register_buffer("logits", torch.zeros(self.num_tasks))
        register_adam(self, "logits")

    def context_needs(self) -> dict[str, str]:
        needs = {
            "model": "its inner step moves every trainable parameter of the model",
            "functional_losses": "it evaluates the model after the inner step",
        }
        if self.upper_split == "val":
            needs["validation_batch"] = "upper_split=val evaluates the upper level on a validation batch"
        return needs

    def hypergradients(self, jacobian: Tensor, names: list[str], params: list[Tensor], ctx: StepContext) -> Tensor:
        """H (T x T): row i is dF_i/da for the upper-level losses after one inner step."""
        require_functional(ctx, "moml")
        w = torch.softmax(self.logits.to(jacobian), dim=0)
        ahead = lookahead_params(names, params, w @ jacobian, self.inner_lr)
        upper = ctx.functional_losses(ahead, upper_batch(ctx, self.upper_split, "balancer.upper_split"))
        upper_jac = task_jacobian(self.task_losses(upper), list(ahead.values()), mode=self.jacobian_mode)
        if ctx.collective is not None:  # data parallel: the global upper-level Jacobian
            upper_jac = ctx.collective.sum(upper_jac)
        return -self.inner_lr * (upper_jac @ jacobian.T) @ softmax_jacobian(w)

    def upper_direction(self, hyper: Tensor, info: BalanceInfo, rows: Tensor | None = None) -> Tensor:
        """MGDA on the upper level: the min-norm point of the convex hull of the rows of ``hyper``
        (of the present tasks' rows only: an absent task's upper loss is an exact 0, and its zero row
        would make the min-norm point 0 and freeze every weight)."""
        if rows is not None:
            hyper = hyper[rows]
        gram = (hyper @ hyper.T).detach().double().cpu().numpy()
        try:
            gamma = min_norm_weights(gram)
        except SolverError as ex:
            self.warn_once("solver_failures", f"moml: min-norm solver failed ({ex}); using equal weights", info)
            gamma = np.full(len(hyper), 1.0 / len(hyper))
        return torch.as_tensor(gamma, dtype=hyper.dtype, device=hyper.device) @ hyper

    def returns_jacobian(self, step: int) -> bool:
        return True  # its training Jacobian over every trainable parameter holds the shared one

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        names, params = trainable(ctx.model)
        jacobian = task_jacobian(self.task_losses(losses), params, mode=self.jacobian_mode)
        if ctx.collective is not None:  # data parallel: the global Jacobian (the losses are global means)
            jacobian = ctx.collective.sum(jacobian)
        shared = [p for p in ctx.shared_params if p.requires_grad]
        info = BalanceInfo(jacobian=columns_of(jacobian, params, shared))
        rows = present_rows(ctx.present)  # an absent task's logit stays as it was
        direction = self.upper_direction(self.hypergradients(jacobian, names, params, ctx), info, rows)
        adam_update(self, "logits", direction, self.weight_lr, rows=rows)
        weights = torch.softmax(self.logits.to(jacobian), dim=0)
        if ctx.present is not None:  # its row of J is zero: weight 0, the others keep theirs
            weights = weights * ctx.present.to(weights)
        accumulate_grad(params, weights @ jacobian)
        if ctx.collective is not None:
            ctx.collective.mark_synced(params)
        info.weights = weights
        return info

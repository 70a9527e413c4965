"""Auto-Lambda: task weights learned by a one-step lookahead on the primary tasks' validation loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, StepContext, present_rows
from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad, flat, task_jacobian
from mtlrun.balancers.lookahead import (
    adam_update,
    columns_of,
    lookahead_params,
    register_adam,
    require_functional,
    trainable,
    upper_batch,
)
from mtlrun.errors import ConfigError, choices_error
from mtlrun.registry import positive


@BALANCERS.register("auto_lambda")
class AutoLambda(Balancer):
    """Auto-Lambda (Liu, James, Davison & Johns, TMLR 2022): weights lam that make one training step best
    for the primary tasks.

        lam <- lam - beta * d/dlam  sum_{i in primary} L_i^val(theta - alpha grad_theta sum_j lam_j L_j^train(theta))

    Because the lookahead is linear in lam, the hypergradient is exact and first-order:
    ``d/dlam_j = -alpha <g_j(theta), grad L^val(theta')>``, with g_j the task-j training gradient over all
    model parameters (the paper approximates the same quantity by finite differences). alpha is the
    trainer's current learning rate (a plain gradient step, as in the paper's equation); lam is
    updated by its own Adam (``weight_lr``), starts at ``weight_init`` and is not constrained, as in
    the authors' code. The model then steps on ``sum_j lam_j L_j`` with the updated lam. A task
    helps the primary tasks exactly when its gradient aligns with theirs after the step, so its
    weight grows; an opposed task's weight shrinks.

    ``primary_tasks`` (default: all tasks, the multi-task setting) are the tasks whose validation
    loss is minimised. ``upper_split=val`` evaluates it on a batch of the validation split;
    ``train`` on an independent training batch, as the authors' released code does.

    Data parallel: the training Jacobian and the validation gradient are all-reduced (the validation
    batch is the global one, sharded like the training batch), so every rank takes the same step.
    """

    #: its lookahead step uses raw gradients from autograd.grad, which a loss scale would distort
    supports_loss_scaling = False

    uses_task_gradients = True

    def __init__(
        self,
        tasks: Sequence[str],
        primary_tasks: list[str] | None = None,
        weight_init: float = 0.1,
        weight_lr: float = 1e-4,
        upper_split: Literal["val", "train"] = "val",
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks)
        primary = list(primary_tasks) if primary_tasks else list(self.tasks)
        for task in primary:
            if task not in self.tasks:
                raise choices_error("balancer.primary_tasks", task, self.tasks)
        if len(set(primary)) != len(primary):
            raise ConfigError(f"balancer.primary_tasks={primary} lists a task twice")
        positive("balancer", weight_lr=weight_lr)
        if upper_split not in ("val", "train"):
            raise choices_error("balancer.upper_split", upper_split, ("train", "val"))
        self.primary = primary
        self.weight_lr, self.upper_split, self.jacobian_mode = weight_lr, upper_split, jacobian_mode
        self.batches_per_step = 2 if upper_split == "train" else 1
        self.register_buffer("primary_mask", torch.tensor([float(t in primary) for t in self.tasks]))
        self.register_buffer("lam", torch.full((self.num_tasks,), float(weight_init)))
        register_adam(self, "lam")

    def context_needs(self) -> dict[str, str]:
        needs = {
            "model": "its lookahead step moves every trainable parameter of the model",
            "lr": "its lookahead step is one step of the optimizer's learning rate",
            "functional_losses": "it evaluates the model after the lookahead step",
        }
        if self.upper_split == "val":
            needs["validation_batch"] = "upper_split=val evaluates the primary tasks on a validation batch"
        return needs

    def hypergradient(self, jacobian: Tensor, names: list[str], params: list[Tensor], ctx: StepContext) -> Tensor:
        """d/dlam of the primary validation loss after the lookahead step; ``jacobian`` is (T, P_all)."""
        require_functional(ctx, "auto_lambda")
        lam = self.lam.to(jacobian)
        ahead = lookahead_params(names, params, lam @ jacobian, ctx.lr)
        val_losses = ctx.functional_losses(ahead, upper_batch(ctx, self.upper_split, "balancer.upper_split"))
        objective = (self.primary_mask.to(jacobian) * self.stack(val_losses)).sum()
        leaves = list(ahead.values())
        grads = flat(torch.autograd.grad(objective, leaves, allow_unused=True), leaves)
        if ctx.collective is not None:  # data parallel: the global validation gradient
            grads = ctx.collective.sum(grads)
        return -ctx.lr * (jacobian @ grads)

    def returns_jacobian(self, step: int) -> bool:
        return True  # its Jacobian over every trainable parameter holds the shared one

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        names, params = trainable(ctx.model)
        jacobian = task_jacobian(self.task_losses(losses), params, mode=self.jacobian_mode)
        if ctx.collective is not None:  # data parallel: the global Jacobian (the losses are global means)
            jacobian = ctx.collective.sum(jacobian)
        rows = present_rows(ctx.present)  # an absent task has no training gradient: its weight stays
        adam_update(self, "lam", self.hypergradient(jacobian, names, params, ctx), self.weight_lr, rows=rows)
        weights = self.lam.to(jacobian)
        if ctx.present is not None:
            weights = weights * ctx.present.to(weights)
        accumulate_grad(params, weights @ jacobian)
        if ctx.collective is not None:
            ctx.collective.mark_synced(params)
        shared = [p for p in ctx.shared_params if p.requires_grad]
        return BalanceInfo(weights=weights.clone(), jacobian=columns_of(jacobian, params, shared))

"""FORUM: a first-order multi-gradient method for multi-objective bilevel optimisation of task weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, StepContext, present_rows
from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad, flat, task_jacobian
from mtlrun.balancers.lookahead import adam_update, register_adam, require_functional, trainable, upper_batch
from mtlrun.balancers.moml import softmax_jacobian
from mtlrun.balancers.solvers import min_norm_weights
from mtlrun.errors import ConfigError, choices_error
from mtlrun.registry import positive


def _project_simplex(v: np.ndarray) -> np.ndarray:
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    support = int(np.count_nonzero(u - cumulative / np.arange(1, v.size + 1) > 0))
    return np.maximum(v - cumulative[max(support, 1) - 1] / max(support, 1), 0.0)


def forum_weights(
    gram: np.ndarray, cross: np.ndarray, q_sq: float, rho: float, *, tol: float = 1e-12, max_iter: int = 20000
) -> tuple[np.ndarray, float]:
    """The dual of FORUM's direction problem: (lam, nu) minimising

        1/2 ||sum_i lam_i gF_i + nu gq||^2 - nu * phi,   phi = rho ||gq||^2,   lam in simplex, nu >= 0,

    given ``gram`` = [<gF_i, gF_j>] (T x T), ``cross`` = [<gF_i, gq>] (T,) and ``q_sq`` = ||gq||^2.
    Solved by accelerated projected gradient in the variables (lam, mu = nu ||gq||), which puts both
    blocks on the same scale; the problem is a small convex QP, so this converges to its minimiser.
    """
    T = gram.shape[0]
    if not q_sq > 1e-20:  # the lower level is already optimal: no constraint, plain MGDA
        return min_norm_weights(gram), 0.0
    q_norm = math.sqrt(q_sq)
    Q = np.empty((T + 1, T + 1))
    Q[:T, :T] = 0.5 * (gram + gram.T)
    Q[:T, T] = Q[T, :T] = cross / q_norm
    Q[T, T] = 1.0
    c = np.zeros(T + 1)
    c[T] = -rho * q_norm
    scale = max(float(np.trace(Q)) / (T + 1), 1e-20)
    Q, c = Q / scale, c / scale
    lipschitz = max(float(np.linalg.eigvalsh(Q)[-1]), 1e-12)

    def project(x: np.ndarray) -> np.ndarray:
        return np.concatenate([_project_simplex(x[:T]), [max(x[T], 0.0)]])

    x = np.concatenate([np.full(T, 1.0 / T), [0.0]])
    y, t = x.copy(), 1.0
    for _ in range(max_iter):
        x_next = project(y - (Q @ y + c) / lipschitz)
        if np.max(np.abs(x_next - x)) < tol:
            x = x_next
            break
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        y = x_next + (t - 1.0) / t_next * (x_next - x)
        x, t = x_next, t_next
    return x[:T], float(x[T]) / q_norm


@BALANCERS.register("forum")
class FORUM(Balancer):
    """FORUM (Ye, Lin, Cao, Zhang & Tsang, ECAI 2024, "A first-order multi-gradient algorithm for
    multi-objective bi-level optimization"), applied to learning task weights.

    Upper-level variables are the logits a of the task weights ``w = softmax(a)``; lower-level ones the
    model parameters omega. The bilevel problem ``min F(omega) s.t. omega in argmin f(a, .)`` with
    ``f = sum_j w_j L_j^train`` and ``F_i = L_i^upper`` is rewritten with the value function as the
    constrained multi-objective problem ``min_{a, omega} F  s.t.  q(a, omega) = f(a, omega) - f(a, omega^K) <= 0``,
    where omega^K are ``inner_steps`` gradient steps (``inner_lr``) on f from omega. Its gradient is
    first-order (omega^K held fixed): ``grad q = (S l(omega) - S l(omega^K), grad_omega f(a, omega))`` with
    S the softmax Jacobian and l the task losses. The update direction solves

        min_d max_i <grad F_i, d> + 1/2 ||d||^2   s.t.  <grad q, d> <= -phi,   phi = rho ||grad q||^2,

    whose dual gives ``d = -(sum_i lam_i grad F_i + nu grad q)``; for fixed lam the optimal
    ``nu = max(sum_i lam_i pi_i, 0)`` with ``pi_i = rho - <grad F_i, grad q> / ||grad q||^2``. The dual
    weights lam are smoothed over iterations k, ``lam_k = lam_{k-1} + beta_k (lam~_k - lam_{k-1})`` with
    ``beta_k = (k + 1)^(-ema_power)`` (lam_0 = lam~_0), and nu is recomputed from the smoothed lam. The
    model takes the omega part of d through the trainer's optimizer; the logits the a part through
    their own Adam (``weight_lr``). As in the authors' multi-task code, the upper-level gradients are
    normalised to unit length (``normalize_upper``) and F is evaluated on an independent training
    batch (``upper_split=train``; ``val`` would fit the model to the validation split directly).
    Defaults: rho = 0.1, inner_lr = 0.1, inner_steps = 5, Adam at 1e-3 on logits initialised uniform.
    Data parallel: grad_omega f, every inner step's gradient and the upper Jacobian are all-reduced
    (the upper batch is the global one, sharded), so omega^K and d are those of one process.
    """

    #: its lookahead step uses raw gradients from autograd.grad, which a loss scale would distort
    supports_loss_scaling = False

    uses_task_gradients = True

    def returns_jacobian(self, step: int) -> bool:
        return False  # its per-task Jacobian is the upper level's, on another batch

    def __init__(
        self,
        tasks: Sequence[str],
        rho: float = 0.1,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        weight_lr: float = 1e-3,
        ema_power: float = 0.75,
        normalize_upper: bool = True,
        upper_split: Literal["val", "train"] = "train",
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks)
        positive("balancer", rho=rho, inner_lr=inner_lr, inner_steps=inner_steps, weight_lr=weight_lr)
        if not 0 <= ema_power <= 1:
            raise ConfigError(f"balancer.ema_power={ema_power} must lie in [0, 1]")
        if upper_split not in ("val", "train"):
            raise choices_error("balancer.upper_split", upper_split, ("train", "val"))
        self.rho, self.inner_lr, self.inner_steps, self.weight_lr = rho, inner_lr, inner_steps, weight_lr
        self.ema_power, self.normalize_upper, self.upper_split = ema_power, normalize_upper, upper_split
        self.jacobian_mode = jacobian_mode
        self.batches_per_step = 2 if upper_split == "train" else 1
        self.register_buffer("logits", torch.zeros(self.num_tasks))
        register_adam(self, "logits")
        self.register_buffer("lam", torch.zeros(self.num_tasks))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def context_needs(self) -> dict[str, str]:
        needs = {
            "model": "its direction spans every trainable parameter of the model",
            "functional_losses": "its inner steps evaluate the model with other parameters",
            "batch": "its inner steps run on the step's batch",
        }
        if self.upper_split == "val":
            needs["validation_batch"] = "upper_split=val evaluates the upper level on a validation batch"
        return needs

    def constraint_gradient(
        self, losses: Tensor, names: list[str], params: list[Tensor], ctx: StepContext
    ) -> tuple[Tensor, Tensor]:
        """grad q = (d q / d a (T,), d q / d omega (P,)) at the current (a, omega), omega^K held fixed."""
        require_functional(ctx, "forum")
        if ctx.batch is None:
            raise ConfigError("balancer=forum needs the step's batch in the step context")
        w = torch.softmax(self.logits.to(losses), dim=0)
        S = softmax_jacobian(w)
        grads = torch.autograd.grad((w * losses).sum(), params, allow_unused=True)
        omega = [p.detach() for p in params]
        for _ in range(self.inner_steps):
            leaves = [o.requires_grad_(True) for o in omega]
            inner = (w * self.stack(ctx.functional_losses(dict(zip(names, leaves)), ctx.batch))).sum()
            steps = torch.autograd.grad(inner, leaves, allow_unused=True)
            if ctx.collective is not None:  # data parallel: each inner step takes the global gradient
                summed = ctx.collective.sum(flat(steps, leaves)).split([o.numel() for o in leaves])
                steps = tuple(g.view_as(o) for g, o in zip(summed, leaves))
            omega = [(o - self.inner_lr * g).detach() if g is not None else o.detach() for o, g in zip(leaves, steps)]
        with torch.no_grad():
            losses_inner = self.stack(ctx.functional_losses(dict(zip(names, omega)), ctx.batch))
        q_omega = flat(grads, params)
        if ctx.collective is not None:
            q_omega = ctx.collective.sum(q_omega)
        return S @ (losses.detach() - losses_inner), q_omega

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        names, params = trainable(ctx.model)
        q_a, q_omega = self.constraint_gradient(self.stack(losses), names, params, ctx)
        batch = upper_batch(ctx, self.upper_split, "balancer.upper_split")
        upper = ctx.functional_losses(dict(zip(names, params)), batch)
        upper_jac = task_jacobian(self.task_losses(upper), params, mode=self.jacobian_mode)
        if ctx.collective is not None:  # data parallel: the global upper-level Jacobian, normalised after
            upper_jac = ctx.collective.sum(upper_jac)
        if self.normalize_upper:
            upper_jac = upper_jac / (upper_jac.norm(dim=1, keepdim=True) + 1e-8)
        q_sq = q_a @ q_a + q_omega @ q_omega
        cross = upper_jac @ q_omega
        gram = upper_jac @ upper_jac.T
        host = torch.cat([gram.flatten(), cross, q_sq.view(1)]).detach().double().cpu().numpy()  # one sync
        T = self.num_tasks
        lam_step, _ = forum_weights(host[: T * T].reshape(T, T), host[T * T : T * T + T], float(host[-1]), self.rho)
        beta = float(self.updates.item() + 1) ** (-self.ema_power)
        self.lam.add_(beta * (torch.as_tensor(lam_step, dtype=self.lam.dtype, device=self.lam.device) - self.lam))
        self.updates.add_(1)
        lam = self.lam.to(q_omega)
        pi = self.rho - cross / q_sq.clamp(min=1e-20)
        nu = (lam @ pi).clamp(min=0.0)
        adam_update(self, "logits", nu * q_a, self.weight_lr, rows=present_rows(ctx.present))
        accumulate_grad(params, lam @ upper_jac + nu * q_omega)
        if ctx.collective is not None:
            ctx.collective.mark_synced(params)
        return BalanceInfo(weights=torch.softmax(self.logits.to(q_omega), dim=0))

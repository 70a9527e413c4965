"""MoCo: stochastic multi-objective descent with a tracked Jacobian (Fernando et al., ICLR 2023)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext, present_rows, select_present
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.errors import ConfigError
from mtlrun.registry import positive


def project_to_simplex(v: Tensor) -> Tensor:
    """Euclidean projection onto the probability simplex (sort-based, no host synchronisation)."""
    n = v.shape[0]
    ordered, _ = torch.sort(v, descending=True)
    shifted = ordered.cumsum(0) - 1.0
    ranks = torch.arange(1, n + 1, device=v.device, dtype=v.dtype)
    support = (ordered - shifted / ranks > 0).to(v.dtype)
    last = torch.argmax(support * ranks)  # the largest rank k with ordered[k] > (cumsum_k - 1) / k
    return (v - shifted[last] / (last + 1).to(v.dtype)).clamp_min(0.0)


@BALANCERS.register("moco")
class MoCo(GramianAggregator):
    """MoCo (Fernando et al., ICLR 2023), Algorithm 1.

    A tracking variable Y (T x P) follows the stochastic Jacobian H_t, which removes the bias of
    MGDA-type weights computed from single mini-batches:

        ``Y <- Y - beta_t (Y - H_t)``,
        ``lambda <- Proj_simplex(lambda - gamma_t (Y Y^T + rho I) lambda)``,  update ``Y^T lambda``,

    with ``beta_t = beta / t^beta_sigma`` and ``gamma_t = gamma / t^gamma_sigma`` (the decaying steps of
    the analysis). With ``normalize=true`` H_t's rows are the task gradients rescaled to the task losses,
    ``g_t L_t / ||g_t||``, as in the authors' experiments. Y, lambda and t live in buffers (checkpointed).
    The update is not a combination of the current gradients, so ``update_every`` and ``rep_grad``
    do not apply.
    """

    output = "direction"

    def __init__(
        self,
        tasks: Sequence[str],
        beta: float = 0.5,
        beta_sigma: float = 0.5,
        gamma: float = 0.1,
        gamma_sigma: float = 0.5,
        rho: float = 0.0,
        normalize: bool = True,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, jacobian_mode=jacobian_mode)
        positive("balancer", beta=beta, gamma=gamma)
        for key, value in (("beta_sigma", beta_sigma), ("gamma_sigma", gamma_sigma), ("rho", rho)):
            if value < 0:
                raise ConfigError(f"balancer.{key}={value} must be >= 0")
        if beta > 1:
            raise ConfigError(f"balancer.beta={beta} must be <= 1 (Y is a moving average)")
        self.beta, self.beta_sigma, self.gamma, self.gamma_sigma, self.rho = beta, beta_sigma, gamma, gamma_sigma, rho
        self.normalize = normalize
        self.register_buffer("tracked", torch.zeros(0))
        self.register_buffer("lambd", torch.full((self.num_tasks,), 1.0 / self.num_tasks))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        saved = state_dict.get(prefix + "tracked")
        if saved is not None and saved.shape != self.tracked.shape:
            self.tracked = torch.zeros_like(saved, device=self.tracked.device)  # Y's size is known after step 1
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def direction(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        targets = jacobian.detach()
        if self.normalize and ctx.losses is not None:
            norms = targets.norm(dim=1, keepdim=True) + 1e-8
            targets = targets / norms * select_present(ctx.losses, ctx.present).to(targets)[:, None]
        shape = (self.num_tasks, targets.shape[1])
        if self.tracked.shape != shape:
            self.tracked = torch.zeros(shape, dtype=targets.dtype, device=targets.device)
        self.steps += 1
        t = self.steps.to(targets.dtype)
        beta_t = self.beta / t**self.beta_sigma
        gamma_t = self.gamma / t**self.gamma_sigma
        rows = present_rows(ctx.present)
        if rows is not None:
            return self._step_on_present(rows, targets, beta_t, gamma_t)
        self.tracked = self.tracked - beta_t * (self.tracked - targets)
        gramian = self.tracked @ self.tracked.T + self.rho * torch.eye(self.num_tasks, device=t.device, dtype=t.dtype)
        lambd = self.lambd.to(targets)
        self.lambd = project_to_simplex(lambd - gamma_t * (gramian @ lambd))
        return self.lambd @ self.tracked

    def _step_on_present(self, rows: Tensor, targets: Tensor, beta_t: Tensor, gamma_t: Tensor) -> Tensor:
        """The same step restricted to the present tasks: their rows of Y move, lambda moves on the face of
        the simplex they span (keeping its mass there), and absent tasks neither move nor contribute."""
        tracked = self.tracked[rows] - beta_t * (self.tracked[rows] - targets)
        self.tracked[rows] = tracked
        before = self.lambd.to(targets)[rows]
        mass = before.sum()
        lambd = torch.where(mass > 0, before / mass.clamp_min(torch.finfo(mass.dtype).tiny), 1.0 / len(rows))
        eye = torch.eye(len(rows), device=targets.device, dtype=targets.dtype)
        lambd = project_to_simplex(lambd - gamma_t * ((tracked @ tracked.T + self.rho * eye) @ lambd))
        self.lambd[rows] = torch.where(mass > 0, lambd * mass, before).to(self.lambd)
        return lambd @ tracked

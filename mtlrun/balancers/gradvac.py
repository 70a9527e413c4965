"""Gradient Vaccine: align task gradients towards adaptive cosine targets (Wang et al., ICLR 2021)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext, present_rows
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.registry import in_range, positive


def gradvac_coefficients(
    G: np.ndarray, targets: np.ndarray, beta: float, eps: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """C (T x T) with ``g_i' = sum_k C[i, k] g_k``, and the updated EMA targets (Algorithm 2).

    For each task i and each other task j in random order, with ``phi = cos(g_i', g_j)`` and target
    ``phi_hat = targets[i, j]``: if ``phi < phi_hat``, add to g_i' the multiple of g_j (Eq. 8)

        ``||g_i'|| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2)) / (||g_j|| sqrt(1 - phi_hat^2)) g_j``

    which makes ``cos(g_i', g_j) = phi_hat`` exactly; then ``phi_hat <- (1 - beta) phi_hat + beta phi``.
    """
    T = G.shape[0]
    C = np.eye(T)
    targets = targets.copy()
    for i in range(T):
        others = [j for j in range(T) if j != i]
        for index in torch.randperm(T - 1).tolist():
            j = others[index]
            inner = C[i] @ G  # inner products of g_i' with every original gradient
            norm_i = math.sqrt(max(float(inner @ C[i]), 0.0))
            norm_j = math.sqrt(max(float(G[j, j]), 0.0))
            phi = float(inner[j]) / (norm_i * norm_j + eps)
            target = float(targets[i, j])
            if phi < target:
                root_phi = math.sqrt(max(1.0 - phi * phi, 0.0))
                root_target = math.sqrt(max(1.0 - target * target, 0.0))
                C[i, j] += norm_i * (target * root_phi - phi * root_target) / (norm_j * root_target + eps)
            targets[i, j] = (1.0 - beta) * target + beta * phi
    return C, targets


@BALANCERS.register("gradvac")
class GradVac(GramianAggregator):
    """Gradient Vaccine (Wang et al., ICLR 2021), at the granularity of the whole shared model.

    Like PCGrad but with a positive target: each pair's cosine is raised to an exponential moving
    average of the cosines seen so far (``beta``, Eq. 9), kept in the ``targets`` buffer so that
    checkpoints resume it. Returns the weights ``sum_i C[i, :]`` of the update ``sum_i g_i'``.
    """

    output = "weights"

    def __init__(
        self,
        tasks: Sequence[str],
        beta: float = 0.01,
        eps: float = 1e-8,
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        in_range("balancer", "beta", beta, 0.0, 1.0)
        positive("balancer", eps=eps)
        self.beta, self.eps = beta, eps
        self.register_buffer("targets", torch.zeros(self.num_tasks, self.num_tasks, dtype=torch.float64))

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        rows = present_rows(ctx.present)
        if rows is None:
            targets = self.targets.to("cpu").numpy()
            C, updated = gradvac_coefficients(self.host_gramian(jacobian), targets, self.beta, self.eps)
            self.targets.copy_(torch.from_numpy(updated))
        else:  # only the pairs of present tasks move their targets
            pairs = torch.meshgrid(rows.cpu(), rows.cpu(), indexing="ij")
            targets = self.targets.to("cpu")[pairs].numpy()
            C, updated = gradvac_coefficients(self.host_gramian(jacobian), targets, self.beta, self.eps)
            self.targets[pairs[0].to(self.targets.device), pairs[1].to(self.targets.device)] = torch.from_numpy(
                updated
            ).to(self.targets.device)
        return self.to_weights(C.sum(axis=0), jacobian)

"""GO4Align: group optimisation for multi-task alignment (``go4align``), a loss weighting."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, LossWeighting, StepContext, present_rows
from mtlrun.errors import ConfigError
from mtlrun.registry import positive

#: keeps the scale-balance term finite for a loss of exactly 0
EPS = 1e-12


def kmeans_1d(values: Tensor, groups: int) -> Tensor:
    """Exact k-means of scalars: the group index (0..K-1, in increasing order of value) of every entry.

    In one dimension an optimal k-means partition is contiguous in sorted order, so dynamic programming
    over the sorted values finds the global optimum (no random restarts, the same answer whatever the
    order of the entries). O(K T^2) for T values, which is nothing next to a model step.
    """
    T = values.numel()
    groups = max(1, min(groups, T))
    order = torch.argsort(values.detach().double(), stable=True)
    x = values.detach().double()[order].tolist()
    prefix, prefix_sq = [0.0], [0.0]
    for v in x:
        prefix.append(prefix[-1] + v)
        prefix_sq.append(prefix_sq[-1] + v * v)

    def cost(i: int, j: int) -> float:  # within-group sum of squares of x[i:j]
        n, s = j - i, prefix[j] - prefix[i]
        return max(prefix_sq[j] - prefix_sq[i] - s * s / n, 0.0)

    inf = float("inf")
    best = [[inf] * (T + 1) for _ in range(groups + 1)]
    cut = [[0] * (T + 1) for _ in range(groups + 1)]
    best[0][0] = 0.0
    for k in range(1, groups + 1):
        for j in range(k, T + 1):
            for i in range(k - 1, j):
                c = best[k - 1][i] + cost(i, j)
                if c < best[k][j] - 1e-15 * max(1.0, abs(c)):
                    best[k][j], cut[k][j] = c, i
    labels_sorted = [0] * T
    j = T
    for k in range(groups, 0, -1):
        i = cut[k][j]
        for position in range(i, j):
            labels_sorted[position] = k - 1
        j = i
    labels = torch.empty(T, dtype=torch.long)
    labels[order] = torch.tensor(labels_sorted, dtype=torch.long)
    return labels.to(values.device)


@BALANCERS.register("go4align")
class GO4Align(LossWeighting):
    """GO4Align (Shen, Wang, Xiao, van Noord & Worring, NeurIPS 2024, "GO4Align: Group Optimization for
    Multi-Task Alignment"): adaptive group risk minimisation.

    Risk-guided group indicators, from the step's losses ``L`` and a state ``omega`` on the
    simplex (uniform at the start):

        beta_t  = (sum_s L_s) / L_t                                (scale balance)
        omega_t <- omega_t exp(-eta L_t) / sum_s omega_s exp(-eta L_s)   (smooth alignment)
        gamma_t = beta_t omega_t                                   (the indicator)

    Dynamical group assignment: the tasks are clustered by their indicators into K groups
    (k-means, solved exactly: in one dimension the optimal partition is contiguous in sorted order), and
    every task of a group gets the group's weight, the mean of its members' indicators:

        w_t = mean_{s in G(t)} gamma_s,      the objective is sum_t w_t L_t.

    So ``num_groups=1`` is a scaled equal weighting and ``num_groups=T`` weights each task by its own
    indicator, ``w_t L_t = omega_t sum_s L_s``. ``eta`` is the authors' ``robust_step_size`` (1e-4) and the
    sign of its exponent follows their implementation (``methods/cluster_methods.py``). ``num_groups``
    defaults to 2 (at most T): their NYUv2 script's default of 1 is the scaled equal weighting above,
    without the grouping the method is named for. Their code clusters with random-initialised k-means;
    the exact solution replaces it.

    A task without labels in a batch (``ctx.present``) gets weight 0: the sums, the normalisation of
    omega and the clustering run over the present tasks, and an absent task's omega stays as it was
    (the present ones keep their total mass). ``omega`` is a buffer, so a checkpoint resumes it.
    """

    def __init__(self, tasks: Sequence[str], num_groups: int = 2, eta: float = 1e-4) -> None:
        super().__init__(tasks)
        if num_groups < 1:
            raise ConfigError(f"balancer.num_groups={num_groups} must be >= 1")
        positive("balancer", eta=eta)
        self.num_groups, self.eta = num_groups, eta
        self.register_buffer("alignment", torch.full((self.num_tasks,), 1.0 / max(self.num_tasks, 1)))

    def indicators(self, losses: Tensor, rows: Tensor | None) -> Tensor:
        """gamma over the tasks of ``rows`` (all when None), after the smooth-alignment update of omega."""
        values = losses.detach().double()
        omega = self.alignment.double()
        if rows is not None:
            values, omega = values[rows], omega[rows]
        mass = omega.sum() if rows is not None else torch.ones((), dtype=omega.dtype)
        tilted = omega * torch.exp(-self.eta * values)
        omega = tilted / tilted.sum() * mass
        if rows is None:
            self.alignment.copy_(omega.to(self.alignment))
        else:
            self.alignment[rows] = omega.to(self.alignment)
        scale = values.sum() / values.clamp_min(EPS)
        return scale * omega / mass

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        rows = present_rows(ctx.present)
        weights = torch.zeros_like(losses)
        if rows is not None and len(rows) == 0:
            return weights
        gamma = self.indicators(losses, rows)
        labels = kmeans_1d(gamma, self.num_groups)
        grouped = torch.zeros_like(gamma)
        for group in labels.unique():
            members = labels == group
            grouped[members] = gamma[members].mean()
        if rows is None:
            return grouped.to(losses)
        weights[rows] = grouped.to(losses)
        return weights

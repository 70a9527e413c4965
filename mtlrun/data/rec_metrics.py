"""The metrics recommendation papers report beside AUC: group AUC and log loss.

- ``gauc``: AUC within each group (user), averaged with the group's number of rows as weight,
  ``GAUC = sum_u n_u AUC_u / sum_u n_u`` over the groups that hold both classes (Zhu et al.,
  "Optimized Cost per Click in Taobao Display Advertising", KDD 2017; Zhou et al., DIN, KDD 2018,
  eq. 8). A group with one class has no AUC and is skipped. It ranks each user's items against
  each other, which is what a feed does, where plain AUC also credits ranking users against users.
- ``logloss``: mean binary cross-entropy of the predicted probabilities (clipped to [1e-7, 1 - 1e-7]).

Importing this module imports torchmetrics; :mod:`mtlrun.data.tasks` loads it on first use.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

EPS = 1e-7


def group_auc(preds: np.ndarray, target: np.ndarray, groups: np.ndarray) -> float:
    """Impression-weighted mean of per-group AUCs (ties count one half); NaN when no group has both classes.

    Within each group the AUC is the Mann-Whitney statistic on average ranks,
    ``AUC_u = (R_u+ - P_u (P_u + 1) / 2) / (P_u N_u)``, with ``R_u+`` the rank sum of the positives.
    """
    if preds.size == 0:
        return float("nan")
    order = np.lexsort((preds, groups))
    g, p, y = groups[order], preds[order], target[order].astype(np.float64)
    _, group_index, sizes = np.unique(g, return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.arange(len(g)) - starts[group_index] + 1.0  # rank within the group
    # ties (same group and prediction) share their average rank
    new_run = np.concatenate([[True], (g[1:] != g[:-1]) | (p[1:] != p[:-1])])
    run = np.cumsum(new_run) - 1
    run_mean = np.bincount(run, weights=position) / np.bincount(run)
    ranks = run_mean[run]
    positives = np.bincount(group_index, weights=y)
    rank_sums = np.bincount(group_index, weights=ranks * y)
    negatives = sizes - positives
    usable = (positives > 0) & (negatives > 0)
    if not usable.any():
        return float("nan")
    auc = (rank_sums[usable] - positives[usable] * (positives[usable] + 1) / 2) / (
        positives[usable] * negatives[usable]
    )
    weights = sizes[usable].astype(np.float64)
    return float((auc * weights).sum() / weights.sum())


class GroupAUC(Metric):
    """GAUC over the rows given so far; ``groups`` (N,) names each row's group. Without groups
    every row is one group, which is plain AUC (tables refuse ``gauc`` without ``dataset.group_by``)."""

    higher_is_better = True
    is_differentiable = False
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")
        self.add_state("groups", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor, groups: Tensor | None = None) -> None:
        self.preds.append(preds.detach().reshape(-1).float())
        self.target.append(target.detach().reshape(-1).float())
        g = torch.zeros_like(target, dtype=torch.long) if groups is None else groups
        self.groups.append(g.detach().reshape(-1).long())

    def compute(self) -> Tensor:
        if not self.preds:
            return torch.tensor(float("nan"))
        preds, target, groups = (dim_zero_cat(s).cpu().numpy() for s in (self.preds, self.target, self.groups))
        return torch.tensor(group_auc(preds, target, groups))


class LogLoss(Metric):
    """Mean binary cross-entropy ``-(y log p + (1 - y) log(1 - p))`` of probabilities ``p``."""

    higher_is_better = False
    is_differentiable = False
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        p = preds.detach().reshape(-1).double().clamp(EPS, 1 - EPS)
        y = target.detach().reshape(-1).double()
        self.total += -(y * p.log() + (1 - y) * (1 - p).log()).sum()
        self.count += y.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count).float() if self.count > 0 else torch.tensor(float("nan"))

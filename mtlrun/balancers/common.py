"""Shared plumbing for gradient aggregators whose decision is a small problem on the Gramian.

The hooks see the Jacobian and the step context only: the current loss values come from
``ctx.losses`` (MGDA's ``loss`` normalisations, MoCo's loss-scaled gradients), and a solver failure
inside a hook is reported with :meth:`~mtlrun.balancers.base.Balancer.solver_failed`, which the base
class's ``backward`` turns into one warning and a count in ``BalanceInfo.extras``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlrun.balancers.base import GradientAggregator


class GramianAggregator(GradientAggregator):
    """A gradient aggregator whose decision is a small problem on G = J J^T (solved in float64)."""

    @staticmethod
    def host_gramian(jacobian: Tensor) -> np.ndarray:
        """G = J J^T as a float64 array (one T x T transfer; the product itself runs on J's device)."""
        return (jacobian @ jacobian.T).detach().to("cpu", torch.float64).numpy()

    @staticmethod
    def to_weights(values: np.ndarray, like: Tensor) -> Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.float64)).to(device=like.device, dtype=like.dtype)

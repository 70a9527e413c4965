"""Shared plumbing for gradient aggregators: the Gramian on the host, loss values, solver warnings.

``aggregate(J)`` sees only the Jacobian, so a method that needs the current loss values (MGDA's
``loss`` normalisations, MoCo's loss-scaled gradients) reads :attr:`GramianAggregator.loss_values`, and a
solver failure inside ``aggregate`` is reported with :meth:`GramianAggregator.solver_failed`; both are
bridged to the step's :class:`BalanceInfo` here, so the base class's ``backward`` stays untouched.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlrun.balancers.base import BalanceInfo, GradientAggregator, StepContext


class GramianAggregator(GradientAggregator):
    """A gradient aggregator whose decision is a small problem on G = J J^T (solved in float64)."""

    loss_values: Tensor | None = None

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        self.loss_values = self.stack(losses).detach()
        self._failures: list[tuple[str, str]] = []
        info = super().backward(losses, ctx)
        for key, message in self._failures:
            self.warn_once(key, message, info)
        self._failures = []
        return info

    def solver_failed(self, key: str, message: str) -> None:
        """Record a solver failure of this step; it is warned once and counted in ``info.extras``."""
        if not hasattr(self, "_failures"):
            self._failures = []
        self._failures.append((key, message))

    @staticmethod
    def host_gramian(jacobian: Tensor) -> np.ndarray:
        """G = J J^T as a float64 array (one T x T transfer; the product itself runs on J's device)."""
        return (jacobian @ jacobian.T).detach().to("cpu", torch.float64).numpy()

    @staticmethod
    def to_weights(values: np.ndarray, like: Tensor) -> Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.float64)).to(device=like.device, dtype=like.dtype)

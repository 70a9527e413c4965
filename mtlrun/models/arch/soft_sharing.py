"""Soft parameter sharing (Duong et al., ACL 2015; Yang & Hospedales, ICLR workshop 2017)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.errors import ConfigError
from mtlrun.models.base import ARCHS, MultiTaskModel
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.heads import build_head


@ARCHS.register("soft_sharing")
class SoftSharing(MultiTaskModel):
    """One encoder per task, tied by a penalty on corresponding parameters instead of shared weights.

    For every encoder parameter, stack the T tasks' copies as the rows of ``W`` (T, P):

    - ``penalty=l2`` (Duong et al., 2015): ``sum_{i<j} ||W_i - W_j||^2``, zero exactly when the
      encoders are equal;
    - ``penalty=trace`` (Yang & Hospedales, 2017, last-axis flattening): the trace (nuclear) norm
      ``||W||_* = sum of singular values``, which favours low-rank, i.e. shared, parameters.

    The penalties are summed over parameters, scaled by ``strength`` and returned by
    :meth:`extra_losses` (logged as ``soft_sharing_penalty``), not as a task. Every parameter belongs
    to one task, so there are no shared parameters and no shared representation.
    """

    supports_multi_input = True

    def __init__(
        self,
        encoder: EncoderSpec,
        tasks: list[TaskSpec],
        penalty: Literal["l2", "trace"] = "l2",
        strength: float = 0.01,
    ) -> None:
        super().__init__(encoder, tasks)
        if strength < 0:
            raise ConfigError(f"arch.strength={strength} must be >= 0")
        self.penalty, self.strength = penalty, strength
        self.encoders = nn.ModuleDict({t: encoder.build() for t in self.task_names})
        self.heads = nn.ModuleDict({t.name: build_head(t, self.encoders[t.name]) for t in tasks})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {t: self.heads[t](self.encoders[t](x)) for t in self.task_names}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        return self.heads[task](self.encoders[task](x))

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.encoders[task], self.heads[task]]

    def distance(self) -> Tensor:
        """The unscaled penalty over all corresponding encoder parameters."""
        per_task = [list(self.encoders[t].parameters()) for t in self.task_names]
        total = torch.zeros((), device=per_task[0][0].device)
        for copies in zip(*per_task):
            stacked = torch.stack([p.reshape(-1) for p in copies])  # (T, P)
            if self.penalty == "l2":
                T = len(copies)
                total = total + sum((stacked[i] - stacked[j]).pow(2).sum() for i in range(T) for j in range(i + 1, T))
            else:
                total = total + torch.linalg.matrix_norm(stacked, ord="nuc")
        return total

    def extra_losses(self) -> dict[str, Tensor]:
        if self.strength == 0:
            return {}
        return {"soft_sharing_penalty": self.strength * self.distance()}

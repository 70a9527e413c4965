"""Independent single-task networks: one encoder and head per task, nothing shared.

With one task this is the single-task baseline (STL) of the negative-transfer report; with
several it trains them side by side under one optimizer (every parameter is task-specific, so
no balancer can couple them).
"""

from __future__ import annotations

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel
from mtlrun.models.encoders import EncoderSpec


@ARCHS.register("single_task")
class SingleTask(MultiTaskModel):
    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec]) -> None:
        super().__init__(encoder, tasks)
        self.encoders = nn.ModuleDict({t.name: encoder.build() for t in tasks})
        self.heads = nn.ModuleDict({t.name: t.build_head(self.encoders[t.name].out_dim) for t in tasks})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {t: self.heads[t](self.encoders[t](x)) for t in self.task_names}

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.encoders[task], self.heads[task]]

"""Independent single-task networks: one encoder and head per task, nothing shared.

With one task this is the single-task baseline (STL) of the negative-transfer report. With
several, each task's network is initialised from the same RNG state, so it starts exactly as a
one-task run with the same seed would, and gradients are clipped per task: training K tasks
together equals K separate single-task runs (without dropout, whose random masks differ).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.heads import build_head


@ARCHS.register("single_task")
class SingleTask(MultiTaskModel):
    supports_multi_input = True

    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec]) -> None:
        super().__init__(encoder, tasks)
        start = torch.get_rng_state()
        encoders, heads = {}, {}
        for spec in tasks:
            torch.set_rng_state(start)
            encoders[spec.name] = encoder.build()
            heads[spec.name] = build_head(spec, encoders[spec.name])
        self.encoders = nn.ModuleDict(encoders)
        self.heads = nn.ModuleDict(heads)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {t: self.heads[t](self.encoders[t](x)) for t in self.task_names}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        return self.heads[task](self.encoders[task](x))

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.encoders[task], self.heads[task]]

    def clip_gradients(self, max_norm: float) -> None:
        for task in self.task_names:
            nn.utils.clip_grad_norm_([p for p in self.task_parameters(task) if p.grad is not None], max_norm)

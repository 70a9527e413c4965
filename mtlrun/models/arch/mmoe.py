"""Multi-gate mixture of experts (Ma et al., KDD 2018)."""

from __future__ import annotations

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.experts import ExtractionLevel, at_least


@ARCHS.register("mmoe")
class MMoE(MultiTaskModel):
    """Shared experts, one softmax gate per task (Ma et al., KDD 2018, eq. 4-5).

    ``y_t = h_t(sum_e g_t(x)_e f_e(x))`` with ``g_t(x) = softmax(W_t vec(x))``. Each expert f_e is a
    fresh copy of the encoder, so the experts are shared and each task owns its gate and head.
    There is no single shared representation: every task reads its own mixture.
    """

    supports_multi_input = True

    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec], num_experts: int = 8) -> None:
        super().__init__(encoder, tasks)
        at_least("arch", 1, num_experts=num_experts)
        probe = encoder.build()
        self.level = ExtractionLevel(self.task_names, encoder.build, encoder.input_shape, num_experts, 0)
        self.heads = build_heads(tasks, probe)

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's expert weights (N, num_experts)."""
        return self.level({t: x for t in self.task_names}, x).task_gates

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.level({t: x for t in self.task_names}, x)
        return {t: self.heads[t](out.task_features[t]) for t in self.task_names}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        return self.heads[task](self.level.task_output(task, x, x))

    def task_modules(self, task: str) -> list[nn.Module]:
        return [*self.level.task_modules(task), self.heads[task]]

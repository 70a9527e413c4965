"""Customized gate control (Tang et al., RecSys 2020)."""

from __future__ import annotations

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.experts import ExtractionLevel, at_least


@ARCHS.register("cgc")
class CGC(MultiTaskModel):
    """Shared experts plus task-specific experts; each task's gate mixes its own and the shared ones.

    ``y_t = h_t(g_t(x) · [E_t,1(x), ..., E_t,m(x), E_s,1(x), ..., E_s,n(x)])`` (Tang et al., RecSys
    2020, eq. 1-3), with ``g_t(x) = softmax(W_t vec(x))``. Experts are fresh copies of the encoder.
    A task owns its experts, its gate and its head; the shared experts serve every task.
    """

    supports_multi_input = True

    def __init__(
        self, encoder: EncoderSpec, tasks: list[TaskSpec], num_shared_experts: int = 1, num_task_experts: int = 1
    ) -> None:
        super().__init__(encoder, tasks)
        at_least("arch", 0, num_shared_experts=num_shared_experts)
        at_least("arch", 1, num_task_experts=num_task_experts)
        probe = encoder.build()
        self.level = ExtractionLevel(
            self.task_names, encoder.build, encoder.input_shape, num_shared_experts, num_task_experts
        )
        self.heads = build_heads(tasks, probe)

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's expert weights (N, num_task_experts + num_shared_experts), own experts first."""
        return self.level({t: x for t in self.task_names}, x).task_gates

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.level({t: x for t in self.task_names}, x)
        return {t: self.heads[t](out.task_features[t]) for t in self.task_names}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        return self.heads[task](self.level.task_output(task, x, x))

    def task_modules(self, task: str) -> list[nn.Module]:
        return [*self.level.task_modules(task), self.heads[task]]

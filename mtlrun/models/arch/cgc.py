"""Customized gate control (Tang et al., RecSys 2020)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.embedded import SparseInputs
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.experts import ExtractionLevel, at_least


@ARCHS.register("cgc")
class CGC(MultiTaskModel):
    """Shared experts plus task-specific experts; each task's gate mixes its own and the shared ones.

    ``y_t = h_t(g_t(x) · [E_t,1(x), ..., E_t,m(x), E_s,1(x), ..., E_s,n(x)])`` (Tang et al., RecSys
    2020, eq. 1-3), with ``g_t(x) = softmax(W_t vec(x))``. Experts are fresh copies of the encoder.
    A task owns its experts, its gate and its head; the shared experts serve every task.

    On sparse features every expert and gate reads the embedded row, one embedding table per field
    shared by all (``embeddings=shared``, the paper's setting), or copies the whole encoder with its
    tables (``per_expert``; the gates then read the raw row).
    """

    supports_multi_input = True

    def __init__(
        self,
        encoder: EncoderSpec,
        tasks: list[TaskSpec],
        num_shared_experts: int = 1,
        num_task_experts: int = 1,
        embeddings: Literal["shared", "per_expert"] = "shared",
    ) -> None:
        super().__init__(encoder, tasks)
        at_least("arch", 0, num_shared_experts=num_shared_experts)
        at_least("arch", 1, num_task_experts=num_task_experts)
        probe = encoder.build()
        self.inputs = SparseInputs(encoder, self.task_names, embeddings, probe)
        self.level = ExtractionLevel(
            self.task_names, self.inputs.body, self.inputs.in_shape, num_shared_experts, num_task_experts
        )
        self.heads = build_heads(tasks, probe)

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's expert weights (N, num_task_experts + num_shared_experts), own experts first."""
        e = self.inputs.task_input(x, self.task_names[0])
        return self.level({t: e for t in self.task_names}, e).task_gates

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        e = self.inputs.task_input(x, self.task_names[0])
        out = self.level({t: e for t in self.task_names}, e)
        return {t: self.heads[t](out.task_features[t]) for t in self.task_names}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        e = self.inputs.task_input(x, task)
        return self.heads[task](self.level.task_output(task, e, e))

    def task_modules(self, task: str) -> list[nn.Module]:
        return [*self.level.task_modules(task), self.heads[task]]

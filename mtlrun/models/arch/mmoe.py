"""Multi-gate mixture of experts (Ma et al., KDD 2018)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.embedded import SparseInputs
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.experts import ExtractionLevel, at_least


@ARCHS.register("mmoe")
class MMoE(MultiTaskModel):
    """Shared experts, one softmax gate per task (Ma et al., KDD 2018, eq. 4-5).

    ``y_t = h_t(sum_e g_t(x)_e f_e(x))`` with ``g_t(x) = softmax(W_t vec(x))``. Each expert f_e is a
    fresh copy of the encoder, so the experts are shared and each task owns its gate and head.
    There is no single shared representation: every task reads its own mixture.

    On sparse features (``encoder=tabular`` with categorical columns) x is the embedded row: with
    ``embeddings=shared`` one embedding table per field feeds every expert and gate, as in the
    paper's recommendation model; ``per_task`` gives each task its own tables (STEM, Su et al.,
    AAAI 2024), the experts then run on each task's embedding; ``per_expert`` copies the whole
    encoder, tables included, into every expert (the gates then read the raw row).
    """

    supports_multi_input = True

    def __init__(
        self,
        encoder: EncoderSpec,
        tasks: list[TaskSpec],
        num_experts: int = 8,
        embeddings: Literal["shared", "per_task", "per_expert"] = "shared",
    ) -> None:
        super().__init__(encoder, tasks)
        at_least("arch", 1, num_experts=num_experts)
        probe = encoder.build()
        self.inputs = SparseInputs(encoder, self.task_names, embeddings, probe)
        self.level = ExtractionLevel(self.task_names, self.inputs.body, self.inputs.in_shape, num_experts, 0)
        self.heads = build_heads(tasks, probe)

    def _features(self, x: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        embedded = self.inputs(x)
        if self.inputs.per_task is None:
            e = embedded[self.task_names[0]]
            out = self.level({t: e for t in self.task_names}, e)
            return out.task_features, out.task_gates
        features = {t: self.level.task_output(t, embedded[t], embedded[t]) for t in self.task_names}
        gates = {t: self.level.task_gates[t](embedded[t]) for t in self.task_names}
        return features, gates

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's expert weights (N, num_experts)."""
        return self._features(x)[1]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self._features(x)[0]
        return {t: self.heads[t](features[t]) for t in self.task_names}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        e = self.inputs.task_input(x, task)
        return self.heads[task](self.level.task_output(task, e, e))

    def task_modules(self, task: str) -> list[nn.Module]:
        return [*self.inputs.task_modules(task), *self.level.task_modules(task), self.heads[task]]

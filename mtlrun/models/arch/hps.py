"""Hard parameter sharing (Caruana, 1997): one shared encoder, one head per task."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.embedded import SparseInputs
from mtlrun.models.encoders import EncoderSpec


@ARCHS.register("hps")
@ARCHS.register("shared_bottom")
class HardParameterSharing(MultiTaskModel):
    """The shared encoder's output is the shared representation every head reads.

    ``arch=shared_bottom`` is the same model under the name recommendation papers use (the
    "shared-bottom" baseline of Ma et al., KDD 2018). With ``embeddings=per_task`` each task embeds
    the categorical fields with its own tables (STEM, Su et al., AAAI 2024) and the shared bottom
    runs on each task's embedding; the tasks then share no single representation.
    """

    has_representation = True
    supports_multi_input = True

    def __init__(
        self, encoder: EncoderSpec, tasks: list[TaskSpec], embeddings: Literal["shared", "per_task"] = "shared"
    ) -> None:
        super().__init__(encoder, tasks)
        self.encoder = encoder.build()
        self.inputs: SparseInputs | None = None
        if embeddings != "shared":
            self.inputs = SparseInputs(encoder, self.task_names, embeddings, self.encoder)
            self.encoder = self.inputs.body()
            self.has_representation = False
        self.heads = build_heads(tasks, self.encoder)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.inputs is None:
            return self.decode(self.encode(x))
        embedded = self.inputs(x)
        return {t: self.heads[t](self.encoder(embedded[t])) for t in self.task_names}

    def encode(self, x: Tensor) -> Tensor:
        if self.inputs is not None:
            return super().encode(x)  # no single shared representation: raises a ConfigError
        return self.encoder(x)

    def decode(self, representation: Tensor) -> dict[str, Tensor]:
        return {t: head(representation) for t, head in self.heads.items()}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        if self.inputs is not None:
            x = self.inputs.task_input(x, task)
        return self.heads[task](self.encoder(x))

    def task_modules(self, task: str) -> list[nn.Module]:
        return [*(self.inputs.task_modules(task) if self.inputs is not None else []), self.heads[task]]

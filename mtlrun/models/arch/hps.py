"""Hard parameter sharing (Caruana, 1997): one shared encoder, one head per task."""

from __future__ import annotations

from torch import Tensor

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.encoders import EncoderSpec


@ARCHS.register("hps")
class HardParameterSharing(MultiTaskModel):
    """The shared encoder's output is the shared representation every head reads."""

    has_representation = True
    supports_multi_input = True

    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec]) -> None:
        super().__init__(encoder, tasks)
        self.encoder = encoder.build()
        self.heads = build_heads(tasks, self.encoder)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, representation: Tensor) -> dict[str, Tensor]:
        return {t: head(representation) for t, head in self.heads.items()}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        return self.heads[task](self.encoder(x))

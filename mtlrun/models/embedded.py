"""The embedding layer of a sparse-feature encoder, kept apart from the network above it.

In recommendation models every categorical field has one embedding table, and the networks that
read the embeddings (MMoE's experts and gates, PLE's levels, ESMM's and AITM's towers, a shared
bottom) all read the *same* tables (Ma et al., KDD 2018, Fig. 1; Tang et al., RecSys 2020,
Section 4.1; Ma et al., SIGIR 2018, Section 2.3): the tables hold most of the parameters and
learn from every task. STEM (Su et al., AAAI 2024) gives each task its own tables instead, so that
tasks that disagree do not pull one embedding both ways. :class:`SparseInputs` provides both: one
embedding layer (``shared``) or one per task (``per_task``), and fresh copies of the rest of the
encoder, whose first layer then reads the embedded vector.

An encoder's embedding layer is an :class:`EmbeddingInput` at the head of its first stage
(``encoder=tabular`` and ``encoder=tabular_embedding``); an encoder without one (an MLP on numbers,
a CNN) passes the raw input through unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

from mtlrun.errors import ConfigError
from mtlrun.models.encoders import EncoderSpec, StagedEncoder


class EmbeddingInput(nn.Module):
    """An encoder's input layer that turns a row of numbers and category indices into one dense
    vector of width ``out_dim`` (the embeddings concatenated with the numeric columns)."""

    _out_dim: int = 0

    @property
    def out_dim(self) -> int:
        return self._out_dim


def input_layer(encoder: StagedEncoder) -> EmbeddingInput | None:
    """The embedding layer at the head of ``encoder``'s first stage, if it has one."""
    first = encoder.stages[0]
    if isinstance(first, nn.Sequential) and len(first) > 0 and isinstance(first[0], EmbeddingInput):
        return first[0]
    return None


def without_input_layer(encoder: StagedEncoder) -> StagedEncoder:
    """``encoder`` with its embedding layer replaced by the identity (in place): it reads embedded vectors."""
    if input_layer(encoder) is not None:
        encoder.stages[0][0] = nn.Identity()
    return encoder


class SparseInputs(nn.Module):
    """The embedding layer of ``encoder`` built once for every task (``shared``) or once per task
    (``per_task``, STEM's task-specific embeddings), and the builder of the encoder's body above it.

    ``forward(x)`` gives each task's embedded input; with ``shared`` it is one tensor, computed once.
    Without an embedding layer, or with ``per_expert`` (every copy of the encoder keeps its own
    tables), the raw input passes through and :meth:`body` is the whole encoder. ``probe`` is a copy
    of the encoder the caller built anyway: its embedding layer is reused, so an encoder without
    one draws no more random numbers than before.
    """

    def __init__(
        self,
        encoder: EncoderSpec,
        tasks: list[str],
        mode: str = "shared",
        probe: StagedEncoder | None = None,
        key: str = "arch",
    ) -> None:
        super().__init__()
        if mode not in ("shared", "per_task", "per_expert"):
            raise ConfigError(f"{key}.embeddings={mode!r}; valid: shared, per_task, per_expert")
        self.encoder, self.tasks = encoder, list(tasks)
        layer = input_layer(probe if probe is not None else encoder.build()) if mode != "per_expert" else None
        if layer is None and mode == "per_task":
            raise ConfigError(
                f"{key}.embeddings=per_task gives each task its own embedding tables, but encoder="
                f"{encoder.name} on this data has none (use encoder=tabular on a table with categorical columns)"
            )
        self.has_embeddings = layer is not None
        self.shared: nn.Module | None = None
        self.per_task: nn.ModuleDict | None = None
        if layer is None:
            self.shared, self.in_shape = nn.Identity(), tuple(encoder.input_shape)
        elif mode == "shared":
            self.shared, self.in_shape = layer, (int(layer.out_dim),)
        else:
            tables = {t: input_layer(encoder.build()) for t in self.tasks}
            self.per_task, self.in_shape = nn.ModuleDict(tables), (int(layer.out_dim),)

    def body(self) -> StagedEncoder:
        """A fresh copy of the encoder without its embedding layer (it reads :attr:`in_shape` inputs)."""
        built = self.encoder.build()
        return without_input_layer(built) if self.has_embeddings else built

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.per_task is not None:
            return {t: self.per_task[t](x) for t in self.tasks}
        assert self.shared is not None
        embedded = self.shared(x)
        return {t: embedded for t in self.tasks}

    def task_input(self, x: Tensor, task: str) -> Tensor:
        """Task ``task``'s embedded input alone."""
        if self.per_task is not None:
            return self.per_task[task](x)
        assert self.shared is not None
        return self.shared(x)

    def task_modules(self, task: str) -> list[nn.Module]:
        """The tables that only ``task`` reads (its own, with ``per_task``)."""
        return [self.per_task[task]] if self.per_task is not None else []

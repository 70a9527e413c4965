"""``encoder=tabular``: an MLP over numeric columns plus one learned embedding per categorical column.

Tables with categorical columns (user ids, item ids, countries) are the input form of MMoE and
PLE on recommendation data (Ma et al., KDD 2018; Tang et al., RecSys 2020): each categorical
column goes through its own embedding table and the embeddings are concatenated with the
numeric columns before the first hidden layer. The input row holds the numeric values first and
then one category index per categorical column (stored as floats; index 0 means unknown), as
``dataset=table`` builds it. Without categorical columns the encoder is exactly ``encoder=mlp``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlrun.errors import ConfigError
from mtlrun.models.encoders import ENCODERS, StagedEncoder, mlp
from mtlrun.registry import positive


def default_embedding_dim(cardinality: int, cap: int) -> int:
    """Embedding width for a categorical column with ``cardinality`` indices: fastai's rule
    ``round(1.6 * n^0.56)`` (Howard & Gugger, Information 2020), capped at ``cap``."""
    return max(1, min(cap, round(1.6 * cardinality**0.56)))


class TabularInput(nn.Module):
    """Split a row into numeric values and category indices; embed and concatenate."""

    def __init__(self, numeric: int, cardinalities: Sequence[int], dims: Sequence[int]) -> None:
        super().__init__()
        self.numeric = numeric
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cardinalities, dims))
        self.out_dim = numeric + sum(dims)

    def forward(self, x: Tensor) -> Tensor:
        codes = x[:, self.numeric :].long()
        parts = [x[:, : self.numeric]] + [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)


@ENCODERS.register("tabular")
def tabular(
    input_shape: tuple[int, ...],
    numeric: int | None = None,
    cardinalities: list[int] = (),
    hidden: list[int] = (128, 64),
    dropout: float = 0.0,
    embedding_dim: int | None = None,
    max_embedding_dim: int = 16,
) -> StagedEncoder:
    """Embeddings + MLP. ``numeric`` and ``cardinalities`` come from the dataset; ``embedding_dim``
    fixes every embedding's width, else each is ``min(max_embedding_dim, round(1.6 n^0.56))``."""
    if len(input_shape) != 1:
        raise ConfigError(f"encoder=tabular needs table rows (D,); this dataset's inputs have shape {input_shape}")
    cardinalities = list(cardinalities)
    numeric = input_shape[0] - len(cardinalities) if numeric is None else numeric
    if numeric + len(cardinalities) != input_shape[0]:
        raise ConfigError(
            f"encoder=tabular: {numeric} numeric + {len(cardinalities)} categorical columns do not match "
            f"the input width {input_shape[0]}"
        )
    if not cardinalities:
        return mlp(input_shape, hidden=hidden, dropout=dropout)
    if not hidden:
        raise ConfigError("encoder.hidden must list at least one layer width")
    positive("encoder", max_embedding_dim=max_embedding_dim, **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
    if embedding_dim is not None:
        positive("encoder", embedding_dim=embedding_dim)
    dims = [embedding_dim or default_embedding_dim(c, max_embedding_dim) for c in cardinalities]
    inputs = TabularInput(numeric, cardinalities, dims)
    stages, shapes = [], []
    in_dim = inputs.out_dim
    for i, width in enumerate(hidden):
        layers: list[nn.Module] = [inputs] if i == 0 else []
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        stages.append(nn.Sequential(*layers))
        shapes.append((width,))
        in_dim = width
    return StagedEncoder(stages, shapes)

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
from mtlrun.models.embedded import EmbeddingInput
from mtlrun.models.encoders import ENCODERS, StagedEncoder, mlp
from mtlrun.registry import positive


def default_embedding_dim(cardinality: int, cap: int) -> int:
    """Embedding width for a categorical column with ``cardinality`` indices: fastai's rule
    ``round(1.6 * n^0.56)`` (Howard & Gugger, Information 2020), capped at ``cap``."""
    return max(1, min(cap, round(1.6 * cardinality**0.56)))


class TabularInput(EmbeddingInput):
    """Split a row into numeric values, category indices and multi-valued index lists; embed and concatenate.

    One table per categorical field (``nn.Embedding``); a multi-valued field (several ids per row,
    ``bags``: ``[rows, columns]``, index 0 = padding) is the mean of its ids' embeddings
    (``nn.EmbeddingBag``, padding skipped; a row without ids gives zeros)."""

    def __init__(
        self,
        numeric: int,
        cardinalities: Sequence[int],
        dims: Sequence[int],
        bags: Sequence[Sequence[int]] = (),
        bag_dims: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.numeric = numeric
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cardinalities, dims))
        self.bag_lengths = [int(length) for _, length in bags]
        self.bags = nn.ModuleList(
            nn.EmbeddingBag(int(rows), d, mode="mean", padding_idx=0) for (rows, _), d in zip(bags, bag_dims)
        )
        self._out_dim = numeric + sum(dims) + sum(bag_dims)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.embeddings)
        codes = x[:, self.numeric : self.numeric + k].long()
        parts = [x[:, : self.numeric]] + [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
        start = self.numeric + k
        for bag, length in zip(self.bags, self.bag_lengths):
            parts.append(bag(x[:, start : start + length].long()))
            start += length
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
    bags: list[list[int]] = (),
) -> StagedEncoder:
    """Embeddings + MLP. ``numeric``, ``cardinalities`` and ``bags`` (multi-valued fields:
    ``[rows, columns]``) come from the dataset; ``embedding_dim`` fixes every embedding's width,
    else each is ``min(max_embedding_dim, round(1.6 n^0.56))``."""
    if len(input_shape) != 1:
        raise ConfigError(f"encoder=tabular needs table rows (D,); this dataset's inputs have shape {input_shape}")
    cardinalities = list(cardinalities)
    bag_columns = sum(int(length) for _, length in bags)
    numeric = input_shape[0] - len(cardinalities) - bag_columns if numeric is None else numeric
    if numeric + len(cardinalities) + bag_columns != input_shape[0]:
        raise ConfigError(
            f"encoder=tabular: {numeric} numeric + {len(cardinalities)} categorical + {bag_columns} multi-valued "
            f"columns do not match the input width {input_shape[0]}"
        )
    if not cardinalities and not bags:
        return mlp(input_shape, hidden=hidden, dropout=dropout)
    if not hidden:
        raise ConfigError("encoder.hidden must list at least one layer width")
    positive("encoder", max_embedding_dim=max_embedding_dim, **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
    if embedding_dim is not None:
        positive("encoder", embedding_dim=embedding_dim)
    dims = [embedding_dim or default_embedding_dim(c, max_embedding_dim) for c in cardinalities]
    bag_dims = [embedding_dim or default_embedding_dim(int(rows), max_embedding_dim) for rows, _ in bags]
    inputs = TabularInput(numeric, cardinalities, dims, bags, bag_dims)
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

"""Text inputs: token-id splits with length buckets, and the pipeline every text dataset shares.

A text dataset's input is ``(C, L)`` token ids per example: ``C`` text columns (or one, when
``join`` puts two columns into one ``[CLS] a [SEP] b`` sequence), each at most ``L =
dataset.max_length`` ids, padded with the tokenizer's pad id. The tokenizer is learned on the
train split only (:mod:`mtlrun.data.formats.tokenizer`) and kept in the run folder as
``tokenizer.json`` (:attr:`MultiTaskDataset.files`); the single-task baselines are trained on the
very same id tensors.

Batches of similar length cut padding (the "bucket iterator" of torchtext and AllenNLP): each
epoch's seeded permutation is cut into windows of ``buckets`` batches, each window sorted by length
and cut into batches, and the batch order shuffled with the same generator. Every batch, shuffled
or not, is trimmed to its longest sequence. Text encoders mask the padding, so an example's
features do not depend on the batch it lands in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mtlrun.data.base import MultiTaskDataset, TensorSplit
from mtlrun.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from mtlrun.data.formats.columns import TaskDecl
    from mtlrun.data.formats.tokenizer import TextTokenizer

#: the key of ``MultiTaskDataset.encoder_context`` that marks a text dataset: ``{"vocab": TextVocab}``
TEXT_CONTEXT = "text"
#: the encoder ``encoder=auto`` picks for text (Kim 2014: fast on a CPU, strong on short texts)
DEFAULT_TEXT_ENCODER = "text_cnn"


@dataclass(frozen=True)
class TextVocab:
    """What a text encoder needs from the tokenizer: the id range, the padding id, and the
    ``tokenizer.json`` it was read from (None when learned in this run; a pretrained checkpoint's
    encoder checks that the data was tokenized with the checkpoint's own vocabulary)."""

    size: int
    pad_id: int
    source: str | None = None


class TextSplit(TensorSplit):
    """Token ids ``x`` (N, C, L) int64, each example's ``lengths`` (N,: its longest column) and the
    pad id; batches come in length buckets and trimmed to their longest sequence."""

    def __init__(self, x: Tensor, targets: dict[str, Tensor], lengths: Tensor, pad_id: int, buckets: int) -> None:
        super().__init__(x, targets)
        self.lengths, self.pad_id, self.buckets = lengths, int(pad_id), int(buckets)

    def _like(self, x: Tensor, targets: dict[str, Tensor], lengths: Tensor) -> TextSplit:
        return TextSplit(x, targets, lengths, self.pad_id, self.buckets)

    def select(self, tasks: list[str]) -> TextSplit:
        return self._like(self.x, {t: self.targets[t] for t in tasks}, self.lengths)

    def to(self, device: torch.device) -> TextSplit:
        return self._like(self.x.to(device), {t: y.to(device) for t, y in self.targets.items()}, self.lengths)

    def order(self, batch_size: int, generator: torch.Generator | None) -> list[Tensor]:
        """The shuffled batches' row indices: seeded permutation, length buckets, shuffled batch order."""
        n = len(self)
        perm = torch.randperm(n, generator=generator)
        if self.buckets <= 0:
            return [perm[s : s + batch_size] for s in range(0, n, batch_size)]
        window = self.buckets * batch_size
        batches: list[Tensor] = []
        for start in range(0, n, window):
            rows = perm[start : start + window]
            rows = rows[torch.sort(self.lengths[rows], stable=True).indices]
            batches += [rows[s : s + batch_size] for s in range(0, len(rows), batch_size)]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def _trimmed(self, index: Tensor | slice) -> tuple[Tensor, dict[str, Tensor]]:
        longest = max(1, int(self.lengths[index].max()))
        rows = index.to(self.x.device) if isinstance(index, Tensor) else index
        return self.x[rows, :, :longest], {t: y[rows] for t, y in self.targets.items()}

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        if shuffle:
            for rows in self.order(batch_size, generator):
                yield self._trimmed(rows)
        else:
            for start in range(0, len(self), batch_size):
                yield self._trimmed(slice(start, start + batch_size))


def text_columns(frame: pd.DataFrame, given: Sequence[str] | None, excluded: set[str], source: str) -> list[str]:
    """The text columns: ``given``, else every string column that is not a task or the split column."""
    import pandas as pd

    from mtlrun.data.formats.columns import require_columns

    if given is not None:
        columns = [str(c) for c in given]
        if not columns:
            raise ConfigError("dataset.text lists no column; name the text column(s), e.g. dataset.text=[review]")
        require_columns(frame, columns, "dataset.text", source)
        clash = [c for c in columns if c in excluded]
        if clash:
            raise ConfigError(f"dataset.text: column '{clash[0]}' of {source} is a task or the split column")
        return columns
    columns = [
        str(c)
        for c in frame.columns
        if c not in excluded and (pd.api.types.is_string_dtype(frame[c]) or pd.api.types.is_object_dtype(frame[c]))
    ]
    if not columns:
        raise ConfigError(f"dataset.text: {source} has no string column besides the tasks; name it with dataset.text")
    return columns


def _texts(frame: pd.DataFrame, column: str) -> list[str]:
    """A column's texts; an empty cell is the empty text."""
    return [str(v) for v in frame[column].fillna("").tolist()]


def _pad(rows: Sequence[Sequence[int]], width: int, pad_id: int) -> Tensor:
    out = torch.full((len(rows), width), pad_id, dtype=torch.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
    return out


@dataclass(frozen=True)
class TextOptions:
    """How texts become ids (the options every text dataset shares)."""

    tokenizer: str = "wordpiece"
    vocab_size: int = 8000
    min_frequency: int = 2
    lowercase: bool = True
    max_length: int = 128
    join: bool = False
    buckets: int = 50


def make_tokenizer(options: TextOptions, train_texts: Sequence[str]) -> TextTokenizer:
    """The tokenizer ``options.tokenizer`` names: learned on ``train_texts``, or read from a file."""
    from mtlrun.data.formats.tokenizer import KINDS, learn_tokenizer, load_tokenizer

    if options.tokenizer in KINDS:
        return learn_tokenizer(
            options.tokenizer, train_texts, options.vocab_size, options.min_frequency, options.lowercase
        )
    return load_tokenizer(options.tokenizer)


def text_dataset(
    parts: Sequence[pd.DataFrame],
    columns: Sequence[str],
    decls: Sequence[TaskDecl],
    source: str,
    options: TextOptions,
    info: dict[str, Any] | None = None,
) -> MultiTaskDataset:
    """The dataset of the three split frames ``parts`` (train first): ``columns`` tokenized, ``decls``
    encoded as :mod:`mtlrun.data.formats.columns` does for tables."""
    from mtlrun.data.formats.columns import encode_tasks, fingerprint

    if options.max_length < 2:
        raise ConfigError(f"dataset.max_length={options.max_length} must be >= 2 (the [CLS] id and one token)")
    if options.join and len(columns) != 2:
        raise ConfigError(
            f"dataset.join=true joins two text columns into one '[CLS] a [SEP] b' sequence; "
            f"dataset.text has {len(columns)}: {', '.join(columns)}"
        )
    specs, targets, task_info, missing = encode_tasks(decls, parts, source)
    texts = [[_texts(part, c) for c in columns] for part in parts]
    tokenizer = make_tokenizer(options, [t for column in texts[0] for t in column])
    splits, lengths_seen, truncated = [], [], []
    for split_texts, y in zip(texts, targets):
        if options.join:
            encoded = [tokenizer.encode(split_texts[0], split_texts[1], options.max_length)]
        else:
            encoded = [tokenizer.encode(column, None, options.max_length) for column in split_texts]
        longest = max(1, max(len(row) for e in encoded for row in e.ids))
        x = torch.stack([_pad(e.ids, longest, tokenizer.pad_id) for e in encoded], dim=1)  # (N, C, L)
        lengths = torch.tensor([max(len(e.ids[i]) for e in encoded) for i in range(x.shape[0])], dtype=torch.int64)
        splits.append(TextSplit(x, y, lengths, tokenizer.pad_id, options.buckets))
        lengths_seen.append(round(float(lengths.float().mean()), 1))
        truncated.append(sum(e.truncated for e in encoded))
    channels = 1 if options.join else len(columns)
    vocab = TextVocab(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.source)
    return MultiTaskDataset(
        tasks=specs,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_shape=(channels, options.max_length),
        default_encoder=DEFAULT_TEXT_ENCODER,
        info={
            **(info or {}),
            "source": source,
            "sizes": [len(s) for s in splits],
            "text": {
                "columns": list(columns),
                "join": options.join,
                "tokenizer": tokenizer.kind if tokenizer.source is None else tokenizer.source,
                "vocab_size": tokenizer.vocab_size,
                "max_length": options.max_length,
                "mean_length": dict(zip(("train", "val", "test"), lengths_seen)),
                "truncated": dict(zip(("train", "val", "test"), truncated)),
            },
            "tasks": task_info,
            "fingerprint": fingerprint(splits),
        },
        has_missing_labels=missing,
        encoder_context={TEXT_CONTEXT: {"vocab": vocab}},
        files={"tokenizer.json": tokenizer.to_json()},
    )


def is_text(data: MultiTaskDataset) -> bool:
    """Whether ``data``'s inputs are token ids."""
    return TEXT_CONTEXT in data.encoder_context

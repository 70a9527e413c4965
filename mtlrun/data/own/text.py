"""``dataset=text``: your own table of texts (CSV, TSV, Parquet), tasks declared as in ``dataset=table``.

The files, splits and task declarations are exactly those of ``dataset=table``
(:mod:`mtlrun.data.own.table`); the inputs are the text column(s) (``text``, default: every
string column that is not a task or the split column), tokenized by a tokenizer learned on the
train split only (``tokenizer``: wordpiece, bpe, byte, char, or a saved tokenizer.json to reuse)
and cut to ``max_length`` ids. Several text columns are each encoded by the one shared encoder and
their features concatenated; ``join=true`` makes two columns one ``[CLS] a [SEP] b`` sequence.
See :mod:`mtlrun.data.text`.
"""

from __future__ import annotations

from typing import Any

from mtlrun.data.base import DATASETS, MultiTaskDataset
from mtlrun.data.text import TextOptions, text_columns, text_dataset


@DATASETS.register("text")
def text(
    tasks: dict[str, Any] | None = None,
    path: str | None = None,
    train: str | None = None,
    val: str | None = None,
    test: str | None = None,
    text: list[str] | None = None,
    tokenizer: str = "wordpiece",
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
    max_length: int = 128,
    join: bool = False,
    buckets: int = 50,
    split_column: str | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    stratify: str | None = None,
    seed: int = 0,
) -> MultiTaskDataset:
    """Build a text dataset from a table; the same files, declarations and ``seed`` give the same ids."""
    from mtlrun.data.formats.columns import parse_tasks, require_columns, strata_for
    from mtlrun.data.own.table import load_splits

    decls = parse_tasks(tasks)
    parts, source, used_split = load_splits(
        path,
        train,
        val,
        test,
        split_column,
        val_fraction,
        test_fraction,
        seed,
        lambda frame: strata_for(frame, decls, stratify),
    )
    excluded = {c for d in decls for c in d.columns} | ({used_split} if used_split else set())
    columns = text_columns(parts[0], text, excluded, source)
    for part in parts[1:]:
        require_columns(part, columns, "dataset.text", source)
    options = TextOptions(tokenizer, vocab_size, min_frequency, lowercase, max_length, join, buckets)
    split = f"column '{used_split}'" if used_split else "files or seeded fractions"
    return text_dataset(parts, columns, decls, source, options, info={"split": split})

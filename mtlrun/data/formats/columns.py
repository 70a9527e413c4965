"""Columns to tensors: task declarations, label encoding, feature encoding and splits.

Shared by every "your own data" source (tables, image folders, Python datasets). Everything that
is learned from data (classes, category vocabularies, means and scales) is learned on the train
split only and applied unchanged to val and test.

Rules, in one place:

- **Labels.** A cell is a missing label when it is empty or NaN (pandas' NA strings such as
  ``NA`` and ``N/A`` included) or equals the task's ``ignore_index``. Classification classes
  are the sorted distinct values of the train split; binary tasks need exactly two and the
  second in sorted order is the positive class (``True``, ``1``, ``yes``, ``male`` after
  ``female``); regression targets must be numeric and are standardised on train (the heads
  predict standardised values, the metrics see the original units); multilabel tasks read one
  0/1 column per label.
- **Features.** A feature column is categorical when listed in ``categorical`` or when it is not
  numeric (strings); every other column is numeric (booleans as 0/1). Numeric columns are
  standardised with the train mean and standard deviation (a constant column gets scale 1) and a
  missing value becomes the train mean, i.e. 0 after standardisation. Categorical values get
  indices 1..K in sorted order of the train values; index 0 is "unknown": a missing value or a
  category not seen in train.
- **Splits.** A ``split`` column (values train/val/test; valid/validation also mean val), separate
  files, or seeded fractions of the rows, optionally stratified by a classification or binary task.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mtlrun.data.base import TaskSpec, given_key
from mtlrun.data.tasks import DECLARABLE_KINDS, GROUPED_METRICS, declared_task
from mtlrun.errors import ConfigError, choices_error
from mtlrun.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
TASK_KEYS = ("column", "columns", "kind", "primary", "metrics", "ignore_index", "given")


@dataclass(frozen=True)
class TaskDecl:
    """One declared task: its kind and the column(s) it reads."""

    name: str
    kind: str
    columns: tuple[str, ...]
    primary: str | None = None
    metrics: tuple[str, ...] | None = None
    ignore_index: Any = None
    #: a binary task on whose positive rows every metric is also scored (``<metric>_given_<given>``)
    given: str | None = None


def parse_tasks(tasks: Any, key: str = "dataset.tasks") -> list[TaskDecl]:
    """``{NAME: {kind, column|columns, primary, metrics, ignore_index, given}}`` (or ``{NAME: KIND}``)."""
    example = f"e.g. '{key}={{y: {{kind: binary}}, z: {{kind: regression}}}}'"
    if not tasks:
        raise ConfigError(f"{key} is required: a mapping NAME: {{kind: ...}}, {example}")
    if not isinstance(tasks, Mapping):
        raise ConfigError(f"{key}={tasks!r} must be a mapping NAME: {{kind: ...}}, {example}")
    decls = []
    for name, spec in tasks.items():
        name = str(name)
        if name.startswith("@") or "/" in name:
            raise ConfigError(f"{key}: task name '{name}' may not start with '@' or hold '/'; rename the task")
        if isinstance(spec, str):
            spec = {"kind": spec}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{key}.{name}={spec!r} must be a mapping with at least 'kind'")
        for k in spec:
            if k not in TASK_KEYS:
                raise ConfigError(f"unknown key '{key}.{name}.{k}'; valid keys: {', '.join(TASK_KEYS)}")
        kind = spec.get("kind")
        if kind not in DECLARABLE_KINDS:
            raise choices_error(f"{key}.{name}.kind", kind, DECLARABLE_KINDS)
        if kind == "multilabel":
            columns = spec.get("columns")
            if not isinstance(columns, Sequence) or isinstance(columns, str) or not columns:
                raise ConfigError(f"{key}.{name}.columns must list the label columns of a multilabel task")
            if "column" in spec:
                raise ConfigError(f"{key}.{name}: a multilabel task takes 'columns' (a list), not 'column'")
        else:
            if "columns" in spec:
                raise ConfigError(f"{key}.{name}: kind {kind} reads one 'column', not 'columns'")
            columns = [spec.get("column") or name]
        metrics = spec.get("metrics")
        if isinstance(metrics, str):
            metrics = [metrics]
        decls.append(
            TaskDecl(
                name=name,
                kind=kind,
                columns=tuple(str(c) for c in columns),
                primary=spec.get("primary"),
                metrics=tuple(metrics) if metrics else None,
                ignore_index=spec.get("ignore_index"),
                given=None if spec.get("given") is None else str(spec.get("given")),
            )
        )
    binary = [d.name for d in decls if d.kind == "binary"]
    for decl in decls:
        if decl.given is not None and (decl.given not in binary or decl.given == decl.name):
            raise choices_error(f"{key}.{decl.name}.given", decl.given, [b for b in binary if b != decl.name])
    return decls


def require_columns(frame: pd.DataFrame, columns: Sequence[str], key: str, source: str) -> None:
    """One-line error naming the first column of ``columns`` that ``frame`` (read from ``source``) lacks."""
    for column in columns:
        if column not in frame.columns:
            available = ", ".join(map(str, frame.columns))
            raise ConfigError(f"{key}: column '{column}' not in {source}; columns: {available}")


# -- labels -----------------------------------------------------------------------------------


def _missing(series: pd.Series, ignore_index: Any) -> pd.Series:
    """Where ``series`` holds no label: NA/NaN, or the task's ``ignore_index``."""
    missing = series.isna()
    if ignore_index is not None:
        if pd.api.types.is_numeric_dtype(series) and isinstance(ignore_index, (int, float)):
            missing |= series == ignore_index
        else:
            missing |= series.astype(str) == str(ignore_index)
    return missing


def _display(value: Any) -> Any:
    """A JSON-friendly label (3.0 -> 3)."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, (int, float, bool)) else str(value)


def _sorted_values(values: pd.Series) -> list[Any]:
    unique = pd.unique(values)
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return sorted(unique.tolist())
    return sorted({str(v) for v in unique})


def _as_keys(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series
    return series.astype(str)


@dataclass
class EncodedTask:
    """A declared task turned into its TaskSpec and one target tensor per split."""

    spec: TaskSpec
    targets: list[Tensor]
    info: dict[str, Any]
    missing: list[int]


def encode_task(
    decl: TaskDecl, parts: Sequence[pd.DataFrame], source: str, split_names=SPLITS, grouped: bool = False
) -> EncodedTask:
    """Encode ``decl``'s column(s) in each split frame of ``parts`` (train first)."""
    key = f"dataset.tasks.{decl.name}"
    for part in parts:
        require_columns(part, decl.columns, key, source)
    if decl.kind == "multilabel":
        return _encode_multilabel(decl, parts, source, split_names)
    column = decl.columns[0]
    series = [part[column] for part in parts]
    missing = [_missing(s, decl.ignore_index) for s in series]
    present_train = series[0][~missing[0]]
    info: dict[str, Any] = {"kind": decl.kind, "column": column}
    if decl.kind in ("classification", "binary"):
        classes = _sorted_values(present_train)
        if len(classes) < 2:
            found = f"only {_display(classes[0])!r}" if classes else "no labels"
            raise ConfigError(
                f"{key}: column '{column}' of {source} has {found} in the train split; a {decl.kind} "
                "task needs at least two classes"
            )
        if decl.kind == "binary" and len(classes) != 2:
            shown = ", ".join(str(_display(c)) for c in classes[:5])
            raise ConfigError(
                f"{key}: column '{column}' of {source} has {len(classes)} classes ({shown}...), "
                "a binary task needs exactly two; use kind: classification"
            )
        index = {c: i for i, c in enumerate(classes)}
        targets = []
        for name, s, miss in zip(split_names, series, missing):
            keys = _as_keys(s[~miss])
            unseen = sorted({str(v) for v in keys if v not in index})
            if unseen:
                raise ConfigError(
                    f"{key}: column '{column}' of {source} has label(s) {', '.join(unseen[:5])} in the {name} "
                    f"split that the train split lacks; train classes: {', '.join(map(str, map(_display, classes)))}"
                )
            codes = np.full(len(s), -1, dtype=np.int64)
            codes[~miss.to_numpy()] = keys.map(index).to_numpy(dtype=np.int64)
            if decl.kind == "binary":
                targets.append(torch.tensor(np.where(codes < 0, np.nan, codes), dtype=torch.float32))
            else:
                targets.append(torch.tensor(codes))
        info["classes"] = [_display(c) for c in classes]
        if decl.kind == "binary":
            info["positive"] = _display(classes[1])
        size, shift, scale = len(classes), 0.0, 1.0
    else:  # regression
        targets = []
        for name, s, miss in zip(split_names, series, missing):
            values = pd.to_numeric(s.where(~miss), errors="coerce")
            bad = values.isna() & ~miss
            if bad.any():
                raise ConfigError(
                    f"{key}: regression column '{column}' of {source} has non-numeric value "
                    f"{s[bad].iloc[0]!r} in the {name} split; regression targets must be numbers"
                )
            targets.append(torch.tensor(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=torch.float32))
        train = targets[0][~torch.isnan(targets[0])].double()
        if train.numel() == 0:
            raise ConfigError(f"{key}: column '{column}' of {source} has no labels in the train split")
        shift = float(train.mean())
        scale = float(train.std()) if train.numel() > 1 else 1.0
        scale = scale if math.isfinite(scale) and scale > 0 else 1.0
        info.update(mean=shift, std=scale)
        size = 1
    counts = [int(m.sum()) for m in missing]
    return EncodedTask(_spec(decl, size, counts, shift, scale, grouped), targets, info, counts)


def _encode_multilabel(
    decl: TaskDecl, parts: Sequence[pd.DataFrame], source: str, split_names: Sequence[str]
) -> EncodedTask:
    key = f"dataset.tasks.{decl.name}"
    targets, counts = [], []
    for name, part in zip(split_names, parts):
        columns = []
        for column in decl.columns:
            s = part[column]
            miss = _missing(s, decl.ignore_index)
            values = pd.to_numeric(s.where(~miss).map(_bool_number), errors="coerce")
            bad = (values.isna() & ~miss) | ~(values.isna() | values.isin([0, 1]))
            if bad.any():
                raise ConfigError(
                    f"{key}: multilabel column '{column}' of {source} has value {s[bad].iloc[0]!r} in the {name} "
                    "split; each label column holds 0/1 (or true/false)"
                )
            columns.append(values.to_numpy(dtype=np.float64, na_value=np.nan))
        matrix = torch.tensor(np.stack(columns, axis=1), dtype=torch.float32)
        targets.append(matrix)
        counts.append(int(torch.isnan(matrix).sum()))
    info = {"kind": "multilabel", "columns": list(decl.columns)}
    return EncodedTask(_spec(decl, len(decl.columns), counts, 0.0, 1.0), targets, info, counts)


def _bool_number(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return 1.0 if value.strip().lower() == "true" else 0.0
    return float(value) if isinstance(value, (bool, np.bool_)) else value


def _spec(
    decl: TaskDecl, size: int, missing: Sequence[int], shift: float, scale: float, grouped: bool = False
) -> TaskSpec:
    return task_spec(decl, size, any(missing), shift, scale, grouped)


def task_spec(decl: TaskDecl, size: int, masked: bool, shift: float, scale: float, grouped: bool = False) -> TaskSpec:
    """The TaskSpec of a declared task once its size (classes or labels) and standardisation are known."""
    for metric in decl.metrics or ():
        if metric in GROUPED_METRICS and not grouped:
            raise ConfigError(
                f"dataset.tasks.{decl.name}.metrics: {metric} scores each group (user) apart and needs "
                "dataset.group_by=COLUMN, the column naming each row's user"
            )
    return declared_task(
        decl.name,
        decl.kind,
        size,
        metrics=decl.metrics,
        primary=decl.primary,
        masked=masked,
        shift=shift,
        scale=scale,
        given=decl.given,
    )


def encode_tasks(
    decls: Sequence[TaskDecl], parts: Sequence[pd.DataFrame], source: str, grouped: bool = False
) -> tuple[dict[str, TaskSpec], list[dict[str, Tensor]], dict[str, Any], bool]:
    """Every declared task: TaskSpecs, per-split ``{task: target}``, info, and whether labels are missing.

    Each task must have at least one label in every split (metrics need them). A task named by
    another's ``given`` also rides along as a side entry (:func:`mtlrun.data.base.given_key`), so
    that the conditional metrics find its labels when a run trains the other task alone.
    """
    specs: dict[str, TaskSpec] = {}
    targets: list[dict[str, Tensor]] = [{} for _ in parts]
    info: dict[str, Any] = {}
    any_missing = False
    for decl in decls:
        encoded = encode_task(decl, parts, source, grouped=grouped)
        for split, part, y, missing in zip(SPLITS, parts, encoded.targets, encoded.missing):
            labels = y.numel() - missing
            if labels == 0:
                raise ConfigError(
                    f"dataset.tasks.{decl.name}: column(s) {', '.join(decl.columns)} of {source} have no label in "
                    f"the {split} split ({len(part)} rows); every task needs labels in train, val and test"
                )
        specs[decl.name] = encoded.spec
        for split_targets, y in zip(targets, encoded.targets):
            split_targets[decl.name] = y
        info[decl.name] = {**encoded.info, "missing_labels": dict(zip(SPLITS, encoded.missing))}
        any_missing |= any(encoded.missing)
    for given in sorted({d.given for d in decls if d.given is not None}):
        for split_targets in targets:
            split_targets[given_key(given)] = split_targets[given]
    return specs, targets, info, any_missing


# -- features ---------------------------------------------------------------------------------


#: category indices are stored in float32 inputs, exact up to 2^24
MAX_INDEX = 1 << 24


def stable_bucket(key: str, buckets: int) -> int:
    """A bucket in ``[0, buckets)`` for ``key`` that is the same in every process and run
    (Python's ``hash`` of a string is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % buckets


def category_key(value: Any) -> str:
    """The text a category is known by; an integral float is written as the integer (12.0 -> "12"),
    so an id column read as floats in one split (it has a gap) matches the same ids read as integers."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def category_codes(values: pd.Series, vocab: Mapping[str, int], buckets: int, unknown: int = 0) -> np.ndarray:
    """int64 index of each value: ``vocab[str(value)]``; an unseen value goes to one of ``buckets``
    hash buckets after the vocabulary (``len(vocab) + 1 + bucket``), or to ``unknown`` without
    buckets; a missing value to ``unknown``. Vectorised over rows: only the distinct values are
    looked at one by one, so a log of millions of rows with integer ids makes no Python object per row."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=np.int64)
    mapped[-1] = unknown  # code -1: missing
    first_bucket = len(vocab) + 1
    for i, value in enumerate(uniques.tolist()):
        key = category_key(value)
        index = vocab.get(key)
        if index is None:
            index = first_bucket + stable_bucket(key, buckets) if buckets and key != "" else unknown
        mapped[i] = index
    return mapped[codes]


def train_vocabulary(values: pd.Series, *, drop_empty: bool = False) -> dict[str, int]:
    """The train values' indices 1..K in sorted order of their text (0 is kept for unknown)."""
    seen = {category_key(v) for v in pd.unique(values[values.notna()]).tolist()}
    return {v: i + 1 for i, v in enumerate(sorted(seen - {""} if drop_empty else seen))}


def split_values(values: pd.Series, separator: str) -> tuple[pd.Series, np.ndarray]:
    """The ids of a multi-valued column (cells like ``12|7|3``), flattened, and each row's count.

    Split and trimmed by pyarrow's vectorised kernels into an Arrow-backed column, so neither the
    cells nor the ids become Python objects (only the distinct ids do, in :func:`category_codes`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pd.api.types.is_float_dtype(values) and bool((values.dropna() % 1 == 0).all()):
        values = values.astype("Int64")  # a column of single integer ids with gaps: 12, not 12.0
    missing = pa.array(values.isna().to_numpy())
    text = pc.if_else(missing, "", pa.array(values.astype("str"), type=pa.string()))
    lists = pc.split_pattern(text, pattern=separator)
    ids = pc.utf8_trim_whitespace(lists.flatten())
    counts = np.diff(np.asarray(lists.offsets))
    return pd.Series(ids, dtype=pd.ArrowDtype(pa.string())), counts


@dataclass
class FeatureEncoder:
    """Numeric columns standardised on train, categorical columns as train vocabulary indices,
    multi-valued columns as padded rows of vocabulary indices.

    Row layout: the numeric columns, one index per categorical column, then ``max_values[j]``
    columns per multi-valued column (index 0 = padding, skipped by ``nn.EmbeddingBag``). With
    ``hash_buckets`` B > 0 a value unseen in train gets one of B indices after the vocabulary
    (a stable hash of its text) instead of the shared unknown index 0, so unseen ids stay apart.
    """

    numeric: list[str]
    mean: np.ndarray
    std: np.ndarray
    categorical: list[str]
    vocab: list[dict[str, int]]
    hash_buckets: int = 0
    multivalued: list[str] = field(default_factory=list)
    bag_vocab: list[dict[str, int]] = field(default_factory=list)
    max_values: list[int] = field(default_factory=list)
    separator: str = "|"

    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows per categorical column: index 0 (unknown), the train categories, the hash buckets."""
        return [len(v) + 1 + self.hash_buckets for v in self.vocab]

    @property
    def bags(self) -> list[list[int]]:
        """``[embedding rows, columns]`` per multi-valued column (row 0 is padding)."""
        return [[len(v) + 1 + self.hash_buckets, n] for v, n in zip(self.bag_vocab, self.max_values)]

    @property
    def width(self) -> int:
        return len(self.numeric) + len(self.categorical) + sum(self.max_values)

    @classmethod
    def fit(
        cls,
        train: pd.DataFrame,
        features: Sequence[str],
        categorical: Sequence[str],
        source: str,
        *,
        multivalued: Sequence[str] = (),
        separator: str = "|",
        max_values: int | None = None,
        hash_buckets: int = 0,
    ) -> FeatureEncoder:
        numeric_cols, categorical_cols = [], []
        for column in features:
            s = train[column]
            if column in multivalued:
                continue
            if column in categorical or not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                categorical_cols.append(column)
            else:
                numeric_cols.append(column)
        means, stds = [], []
        for column in numeric_cols:
            values = pd.Series(train[column].to_numpy(dtype=np.float64, na_value=np.nan))
            if values.notna().sum() == 0:
                raise ConfigError(f"dataset.features: column '{column}' of {source} has no values in the train split")
            mean, std = float(values.mean()), float(values.std(ddof=0))
            means.append(mean)
            stds.append(std if math.isfinite(std) and std > 0 else 1.0)
        vocab = [train_vocabulary(train[column]) for column in categorical_cols]
        bag_vocab, lengths = [], []
        for column in multivalued:
            ids, counts = split_values(train[column], separator)
            bag_vocab.append(train_vocabulary(ids, drop_empty=True))
            longest = int(counts.max()) if counts.size else 1
            lengths.append(max(1, min(longest, max_values) if max_values else longest))
        encoder = cls(
            numeric_cols, np.array(means), np.array(stds), categorical_cols, vocab, hash_buckets,
            list(multivalued), bag_vocab, lengths, separator,
        )  # fmt: skip
        for column, rows in zip(
            [*categorical_cols, *multivalued], [*encoder.cardinalities, *(b[0] for b in encoder.bags)]
        ):
            if rows > MAX_INDEX:
                raise ConfigError(
                    f"dataset.categorical: column '{column}' of {source} needs {rows} embedding rows, more than "
                    f"{MAX_INDEX} (indices are stored as float32); hash it into fewer with dataset.hash_buckets"
                )
        return encoder

    def transform(self, frame: pd.DataFrame) -> Tensor:
        """(N, width) float32: standardised numbers, category indices, then the padded multi-valued indices."""
        return torch.from_numpy(self.transform_numpy(frame))

    def transform_numpy(self, frame: pd.DataFrame) -> np.ndarray:
        """:meth:`transform` as a numpy array, written column block by column block."""
        out = np.zeros((len(frame), self.width), dtype=np.float32)
        k = len(self.numeric)
        if self.numeric:
            values = frame[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
            values = (values - self.mean) / self.std
            out[:, :k] = np.nan_to_num(values, nan=0.0)
        for j, (column, vocab) in enumerate(zip(self.categorical, self.vocab)):
            out[:, k + j] = category_codes(frame[column], vocab, self.hash_buckets)
        start = k + len(self.categorical)
        for column, vocab, length in zip(self.multivalued, self.bag_vocab, self.max_values):
            ids, counts = split_values(frame[column], self.separator)
            codes = category_codes(ids, vocab, self.hash_buckets)
            rows = np.repeat(np.arange(len(frame)), counts)
            position = np.arange(len(ids)) - np.repeat(np.cumsum(counts) - counts, counts)
            keep = (position < length) & (codes > 0)  # ids past max_values, and unknown ids, are left out
            block = np.zeros((len(frame), length), dtype=np.float32)
            block[rows[keep], position[keep]] = codes[keep]
            out[:, start : start + length] = block
            start += length
        return out

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "numeric": self.numeric,
            "categorical": {c: len(v) for c, v in zip(self.categorical, self.vocab)},
            "missing_features": "numeric: train mean; categorical: index 0 (unknown)",
        }
        if self.multivalued:
            described["multivalued"] = {
                c: {"ids": len(v), "max_values": n}
                for c, v, n in zip(self.multivalued, self.bag_vocab, self.max_values)
            }
        if self.hash_buckets:
            described["hash_buckets"] = self.hash_buckets
        return described


def group_index(values: pd.Series) -> Tensor:
    """int64 group (user) index of each row: equal values, equal index (a missing value is a group of its own)."""
    codes, _ = pd.factorize(values, use_na_sentinel=False)
    return torch.from_numpy(codes.astype(np.int64))


def fingerprint(splits: Sequence[Any]) -> str:
    """A short hash of the built data (inputs and targets of every split): it changes when the
    files change even if their paths do not, so caches keyed on the config can include it."""
    digest = hashlib.blake2b(digest_size=10)
    for split in splits:
        for tensor in (split.x, *(split.targets[t] for t in sorted(split.targets))):
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# -- splits -----------------------------------------------------------------------------------


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ConfigError(f"dataset.{key}={value} must lie in (0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"dataset.val_fraction + dataset.test_fraction = {val_fraction + test_fraction:g} must be < 1 "
            "(the rest is the train split)"
        )


def split_by_column(frame: pd.DataFrame, column: str, source: str) -> list[pd.DataFrame]:
    """The rows of each split as named by ``column`` (train/val/test)."""
    labels = frame[column].astype(str).str.strip().str.lower()
    unknown = sorted(set(labels) - set(SPLIT_ALIASES))
    if unknown:
        raise ConfigError(
            f"dataset.split_column: column '{column}' of {source} has value '{unknown[0]}'; "
            f"valid values: {', '.join(SPLIT_ALIASES)}"
        )
    canonical = labels.map(SPLIT_ALIASES)
    return [frame[canonical == name].reset_index(drop=True) for name in SPLITS]


def split_by_fractions(
    n: int, val_fraction: float, test_fraction: float, seed: int, strata: np.ndarray | None = None
) -> list[np.ndarray]:
    """Seeded train/val/test row indices; with ``strata`` each stratum is split in the same proportions."""
    check_fractions(val_fraction, test_fraction)
    generator = torch.Generator().manual_seed(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    parts: list[list[np.ndarray]] = [[], [], []]
    for rows in groups:
        order = rows[torch.randperm(len(rows), generator=generator).numpy()]
        n_val, n_test = int(round(len(rows) * val_fraction)), int(round(len(rows) * test_fraction))
        parts[0].append(order[n_val + n_test :])
        parts[1].append(order[:n_val])
        parts[2].append(order[n_val : n_val + n_test])
    return [np.sort(np.concatenate(p)) for p in parts]


def check_not_empty(parts: Sequence[pd.DataFrame], how: str) -> None:
    for name, part in zip(SPLITS, parts):
        if len(part) == 0:
            raise ConfigError(f"the {name} split is empty ({how}); every split needs at least one row")


def strata_for(frame: pd.DataFrame, decls: Sequence[TaskDecl], stratify: str | None) -> np.ndarray | None:
    """The stratification labels of task ``stratify`` (missing labels form their own stratum)."""
    if stratify is None:
        return None
    by_name = {d.name: d for d in decls}
    choices = [d.name for d in decls if d.kind in ("classification", "binary")]
    if stratify not in choices:
        raise choices_error("dataset.stratify", stratify, choices)
    decl = by_name[stratify]
    s = frame[decl.columns[0]]
    return np.where(_missing(s, decl.ignore_index), "<missing>", s.astype(str)).astype(str)

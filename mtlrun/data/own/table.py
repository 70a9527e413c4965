"""``dataset=table``: your own table (CSV, TSV, Parquet or NumPy ``.npz``), tasks declared in YAML.

One file (``path``) split by a ``split`` column or by seeded fractions, or one file per split
(``train``/``val``/``test``). Each task reads one column (multilabel: several); the features
are the listed columns or every other column. Numeric features are standardised on train,
string (or listed ``categorical``) features become learned embeddings in ``encoder=tabular``
(the input form of MMoE/PLE on recommendation data, Ma et al. KDD 2018; Tang et al. RecSys
2020). The exact rules for labels, missing values and splits are in :mod:`mtlrun.data.formats.columns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtlrun.data.base import DATASETS, MultiTaskDataset, TensorSplit
from mtlrun.errors import ConfigError, choices_error

if TYPE_CHECKING:  # pandas is imported when a table is read, so other datasets start faster
    import pandas as pd

READERS = {".csv": "CSV", ".tsv": "TSV", ".tab": "TSV", ".parquet": "Parquet", ".pq": "Parquet", ".npz": "NumPy"}
COMPRESSION = (".gz", ".bz2", ".zip", ".xz", ".zst")


def resolve_path(path: str, key: str) -> Path:
    """``path`` relative to the folder mtlrun was launched from (also under Hydra multirun)."""
    from hydra.utils import to_absolute_path

    if not isinstance(path, str) or not path:
        raise ConfigError(f"{key}={path!r} must be a file path")
    return Path(to_absolute_path(str(Path(path).expanduser())))


def table_format(path: Path, key: str) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in READERS:
        valid = ", ".join(READERS)
        raise ConfigError(f"{key}={path}: unknown file type '{suffix}'; valid: {valid} (optionally compressed, .gz)")
    return READERS[suffix]


def read_table(path: Path, key: str) -> pd.DataFrame:
    """Read one table with pandas (pyarrow for Parquet); one-line errors name the file.

    What pandas would read wrong without a word (a column name twice, a header shorter than its
    rows, a row cut short) is refused by :mod:`mtlrun.data.formats.table_shape`.
    """
    import pandas as pd

    from mtlrun.data.formats.table_shape import check_parquet_columns, check_text_table

    kind = table_format(path, key)
    if not path.is_file():
        raise ConfigError(f"{key}: file not found: {path}")
    try:
        if kind in ("CSV", "TSV"):
            sep = "\t" if kind == "TSV" else ","
            frame = pd.read_csv(path, sep=sep)
            check_text_table(path, sep, frame, key)
            return frame
        if kind == "Parquet":
            check_parquet_columns(path, key)
            return pd.read_parquet(path, engine="pyarrow")
        return _read_npz(path, key)
    except ConfigError:
        raise
    except Exception as ex:  # parser errors of pandas, pyarrow, numpy
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise ConfigError(f"{key}: cannot read {path} as {kind}: {first}") from ex


def _read_npz(path: Path, key: str) -> pd.DataFrame:
    """Each array of the archive is a column; a 2-D array ``X`` becomes columns ``X_0``, ``X_1``, ..."""
    import pandas as pd

    columns: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as archive:
        for name in archive.files:
            array = archive[name]
            if array.ndim == 1:
                _add_column(columns, name, array, name, path, key)
            elif array.ndim == 2:
                for j in range(array.shape[1]):
                    _add_column(columns, f"{name}_{j}", array[:, j], name, path, key)
            else:
                raise ConfigError(f"{key}: array '{name}' of {path} has {array.ndim} dimensions; use 1-D or 2-D arrays")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ConfigError(f"{key}: the arrays of {path} have different lengths {sorted(lengths)}")
    return pd.DataFrame(columns)


def _add_column(columns: dict[str, np.ndarray], column: str, values: np.ndarray, array: str, path: Path, key: str):
    """One column of an archive; a name made twice (array ``X`` gives ``X_0``, beside an array
    named ``X_0``) is refused rather than one silently replacing the other."""
    if column in columns:
        raise ConfigError(
            f"{key}: {path} gives column '{column}' twice (array '{array}' and another array); rename one of them"
        )
    columns[column] = values


def load_splits(
    path: str | None,
    train: str | None,
    val: str | None,
    test: str | None,
    split_column: str | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    strata_of: Any,
) -> tuple[list[pd.DataFrame], str, str | None]:
    """The three split frames, a description of the source for messages, and the split column used.

    ``strata_of(frame)`` gives the stratification labels of a frame (or None).
    """
    from mtlrun.data.formats.columns import SPLITS, check_not_empty, require_columns, split_by_column

    if path is not None and any(p is not None for p in (train, val, test)):
        raise ConfigError("give dataset.path (one file) or dataset.train/val/test (one file per split), not both")
    if path is None and train is None:
        raise ConfigError("dataset.path (one table) or dataset.train (one table per split) is required")
    if path is not None:
        file = resolve_path(path, "dataset.path")
        frame = read_table(file, "dataset.path")
        source = file.name
        column = split_column if split_column is not None else ("split" if "split" in frame.columns else None)
        if column is not None:
            require_columns(frame, [column], "dataset.split_column", source)
            parts = split_by_column(frame, column, source)
            check_not_empty(parts, f"column '{column}' of {source}")
            return parts, source, column
        return _fractions(frame, val_fraction, test_fraction, seed, strata_of, source), source, None
    files = {name: p for name, p in zip(SPLITS, (train, val, test)) if p is not None}
    frames = {name: read_table(resolve_path(p, f"dataset.{name}"), f"dataset.{name}") for name, p in files.items()}
    source = ", ".join(Path(p).name for p in files.values())
    missing = [name for name in SPLITS if name not in frames]
    if missing:  # carve the missing splits out of the train file
        carved = _fractions(frames["train"], val_fraction, test_fraction, seed, strata_of, source)
        frames["train"] = carved[0]
        for name in missing:
            frames[name] = carved[SPLITS.index(name)]
    parts = [frames[name].reset_index(drop=True) for name in SPLITS]
    for name, part in zip(SPLITS, parts):
        if len(part) == 0:
            raise ConfigError(f"dataset.{name}: the {name} split is empty ({files.get(name, 'carved from train')})")
    return parts, source, None


def _fractions(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int, strata_of: Any, source: str
) -> list[pd.DataFrame]:
    from mtlrun.data.formats.columns import check_fractions, check_not_empty, split_by_fractions

    check_fractions(val_fraction, test_fraction)
    rows = split_by_fractions(len(frame), val_fraction, test_fraction, seed, strata_of(frame))
    parts = [frame.iloc[r].reset_index(drop=True) for r in rows]
    how = f"{len(frame)} rows of {source}, val_fraction={val_fraction}, test_fraction={test_fraction}"
    check_not_empty(parts, how)
    return parts


@DATASETS.register("table")
def table(
    tasks: dict[str, Any] | None = None,
    path: str | None = None,
    train: str | None = None,
    val: str | None = None,
    test: str | None = None,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    split_column: str | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    stratify: str | None = None,
    seed: int = 0,
    group_by: str | None = None,
    multivalued: list[str] | None = None,
    separator: str = "|",
    max_values: int | None = None,
    hash_buckets: int = 0,
    cache: str | None = None,
) -> MultiTaskDataset:
    """Build a dataset from a table; the same files, declarations and ``seed`` give the same data.

    Recommendation logs: ``group_by`` names the user column (GAUC scores each user's rows apart),
    ``multivalued`` columns hold several ids joined by ``separator`` (pooled by ``nn.EmbeddingBag``,
    at most ``max_values`` per row), ``hash_buckets`` > 0 sends ids unseen in train to that many
    hash buckets instead of the one unknown index. ``cache``: a folder where the encoded splits
    are kept as memory-mapped arrays (:mod:`mtlrun.data.formats.encoded_cache`), for logs too large
    to hold encoded in memory and to skip reading them again.
    """
    from mtlrun.data.formats.columns import parse_tasks, strata_for

    options = {  # every argument shapes the encoding
        "tasks": tasks, "path": path, "train": train, "val": val, "test": test, "features": features,
        "categorical": categorical, "split_column": split_column, "val_fraction": val_fraction,
        "test_fraction": test_fraction, "stratify": stratify, "seed": seed, "group_by": group_by,
        "multivalued": multivalued, "separator": separator, "max_values": max_values, "hash_buckets": hash_buckets,
    }  # fmt: skip
    decls = parse_tasks(tasks)
    folder = None
    if cache is not None:
        from mtlrun.data.formats import encoded_cache

        named = [p for p in (path, train, val, test) if p is not None]
        files = [resolve_path(p, "dataset.path") for p in named]
        for file in files:
            if not file.is_file():
                raise ConfigError(f"dataset.path: file not found: {file}")
        folder = encoded_cache.entry(cache, files, options)
        hit = encoded_cache.load(folder, lambda meta: cached_specs(decls, meta))
        if hit is not None:
            return hit
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
    return build_table(
        decls,
        parts,
        source,
        split=f"column '{used_split}'" if used_split else "files or seeded fractions",
        exclude=[used_split] if used_split else [],
        features=features,
        categorical=categorical,
        group_by=group_by,
        multivalued=multivalued,
        separator=separator,
        max_values=max_values,
        hash_buckets=hash_buckets,
        cache=folder,
    )


def cached_specs(decls: list[Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The TaskSpecs of a cached encoding: the declarations with the sizes and scales learned then."""
    from mtlrun.data.formats.columns import task_spec

    tasks = meta["tasks"]
    return {
        d.name: task_spec(
            d,
            tasks[d.name]["size"],
            tasks[d.name]["masked"],
            tasks[d.name]["shift"],
            tasks[d.name]["scale"],
            meta["grouped"],
        )
        for d in decls
    }


def build_table(
    decls: list[Any],
    parts: list[pd.DataFrame],
    source: str,
    *,
    split: str,
    exclude: Sequence[str] = (),
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    group_by: str | None = None,
    multivalued: list[str] | None = None,
    separator: str = "|",
    max_values: int | None = None,
    hash_buckets: int = 0,
    info: dict[str, Any] | None = None,
    cache: Path | None = None,
) -> MultiTaskDataset:
    """The dataset of three split frames (train first) and the task declarations
    (:class:`~mtlrun.data.formats.columns.TaskDecl`): what ``dataset=table`` and the recommendation
    benchmarks (AliExpress, Ali-CCP, MovieLens) share. With ``cache`` (a folder) the encoded splits
    are written there as ``.npy`` files and served memory-mapped."""
    from mtlrun.data.base import GROUP_KEY
    from mtlrun.data.formats.columns import (
        FeatureEncoder,
        encode_tasks,
        fingerprint,
        group_index,
        require_columns,
    )

    task_columns = {c for d in decls for c in d.columns}
    if features is None:
        features = [c for c in parts[0].columns if c not in task_columns and c not in exclude]
    categorical = list(categorical or [])
    multivalued = list(multivalued or [])
    keyed = [("dataset.features", features), ("dataset.categorical", categorical), ("dataset.multivalued", multivalued)]
    if group_by is not None:
        keyed.append(("dataset.group_by", [group_by]))
    for key, columns in keyed:
        for part in parts:
            require_columns(part, columns, key, source)
    overlap = sorted(task_columns & set(features))
    if overlap:
        raise ConfigError(f"dataset.features: column '{overlap[0]}' of {source} is a task column; features exclude it")
    for key, columns in (("dataset.categorical", categorical), ("dataset.multivalued", multivalued)):
        for column in columns:
            if column not in features:
                raise choices_error(key, column, features)
    both = sorted(set(categorical) & set(multivalued))
    if both:
        raise ConfigError(
            f"dataset.multivalued: column '{both[0]}' is also listed in dataset.categorical; list it once"
        )
    if hash_buckets < 0:
        raise ConfigError(f"dataset.hash_buckets={hash_buckets} must be >= 0 (0: unseen ids share index 0)")
    if max_values is not None and max_values < 1:
        raise ConfigError(f"dataset.max_values={max_values} must be >= 1 (null: the most ids in one train cell)")
    if not separator:
        raise ConfigError("dataset.separator must be a non-empty string, e.g. '|'")
    if not features:
        raise ConfigError(f"no feature columns in {source}: every column is a task or the split column")
    specs, targets, task_info, missing = encode_tasks(decls, parts, source, grouped=group_by is not None)
    encoder = FeatureEncoder.fit(
        parts[0],
        features,
        categorical,
        source,
        multivalued=multivalued,
        separator=separator,
        max_values=max_values,
        hash_buckets=hash_buckets,
    )
    if group_by is not None:
        for part, y in zip(parts, targets):
            y[GROUP_KEY] = group_index(part[group_by])
    context: dict[str, Any] = {"numeric": len(encoder.numeric), "cardinalities": encoder.cardinalities}
    if encoder.multivalued:
        context["bags"] = encoder.bags
    extra = {"group_by": group_by} if group_by is not None else {}
    if cache is not None:
        from mtlrun.data.formats import encoded_cache

        meta = {
            "tasks": {
                name: {
                    "size": spec.out_dim if spec.kind != "binary" else 2,
                    "masked": spec.masked,
                    "shift": spec.target_shift,
                    "scale": spec.target_scale,
                }
                for name, spec in specs.items()
            },
            "grouped": group_by is not None,
            "dtypes": {name: str(y.dtype).removeprefix("torch.") for name, y in targets[0].items()},
            "input_shape": [encoder.width],
            "default_encoder": "tabular",
            "has_missing_labels": missing,
            "encoder_context": {"tabular": context},
            "info": {
                **(info or {"source": source}),
                "sizes": [len(p) for p in parts],
                "split": split,
                "features": encoder.describe(),
                "tasks": task_info,
                **extra,
            },
        }
        encoded_cache.store(cache, parts, encoder.transform_numpy, encoder.width, targets, meta)
        loaded = encoded_cache.load(cache, lambda m: cached_specs(decls, m))
        assert loaded is not None
        return loaded
    splits = [TensorSplit(encoder.transform(part), y) for part, y in zip(parts, targets)]
    return MultiTaskDataset(
        tasks=specs,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_shape=(encoder.width,),
        default_encoder="tabular",
        info={
            **(info or {"source": source}),
            "sizes": [len(s) for s in splits],
            "split": split,
            "features": encoder.describe(),
            "tasks": task_info,
            **extra,
            "fingerprint": fingerprint(splits),
        },
        has_missing_labels=missing,
        encoder_context={"tabular": context},
    )

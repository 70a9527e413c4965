"""Ali-CCP, Alibaba's click and conversion prediction log (Ma et al., ESMM, SIGIR 2018), in the
processed layout torch-rechub and its ESMM/MMoE/PLE/AITM examples read.

Files under ``dataset.root`` (``$MTLRUN_DATA/ali_ccp`` by default)::

    ali_ccp_train*.csv   ali_ccp_val*.csv   ali_ccp_test*.csv

(``ali_ccp_train.csv`` for the full set, ``ali_ccp_train_sample.csv`` for the sample; with several
matches, ``dataset.suffix`` picks one, e.g. ``_sample``). Columns: the labels ``click`` and
``purchase``, 23 sparse fields of integer ids (``101`` the user, ``121`` ... ``301``, ``109_14``,
``110_14``, ``127_14``, ``150_14``), and 8 dense fields (``D109_14``, ``D110_14``, ``D127_14``,
``D150_14``, ``D508``, ``D509``, ``D702``, ``D853``). Tasks: ``click`` and ``purchase`` (a purchase
implies a click); ``purchase`` is also scored on clicked rows (``*_given_click``, the paper's CVR
AUC; plain ``auroc`` is its CTCVR AUC). Rows are grouped by user (field ``101``) for ``gauc``.
``dataset.cache=FOLDER`` keeps the encoded log there as memory-mapped arrays
(:mod:`mtlrun.data.formats.encoded_cache`).
"""

from __future__ import annotations

from pathlib import Path

from mtlrun.data.base import DATASETS, MultiTaskDataset
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.errors import ConfigError

SPARSE = (
    "101 121 122 124 125 126 127 128 129 205 206 207 210 216 508 509 702 853 301 109_14 110_14 127_14 150_14"
).split()
DENSE = ["D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853"]
LABELS = ["click", "purchase"]
USER = "101"
HOW = (
    "get it: the processed Ali-CCP files of torch-rechub (examples/ranking/data/ali-ccp: "
    "ali_ccp_{train,val,test}.csv, or the _sample files), placed in dataset.root (or $MTLRUN_DATA/ali_ccp)"
)
METRICS = ["auroc", "gauc", "logloss"]


def split_file(folder: Path, split: str, suffix: str | None) -> Path:
    """``ali_ccp_<split><suffix>.csv``; without ``suffix`` the plain name, else the one match of the pattern."""
    if suffix is not None:
        return bf.require("ali_ccp", folder, bf.DataFile(f"ali_ccp_{split}{suffix}.csv"), HOW)
    plain = folder / f"ali_ccp_{split}.csv"
    if plain.is_file():
        return plain
    matches = sorted(folder.glob(f"ali_ccp_{split}*.csv")) if folder.is_dir() else []
    if not matches:
        raise bf.data_error("ali_ccp", folder, f"missing file ali_ccp_{split}*.csv", HOW)
    if len(matches) > 1:
        options = ", ".join(p.name[len(f"ali_ccp_{split}") : -4] for p in matches)
        raise ConfigError(
            f"dataset=ali_ccp: several {split} files in {folder}; choose with dataset.suffix (one of {options})"
        )
    return matches[0]


@DATASETS.register("ali_ccp")
def ali_ccp(
    root: str | None = None, suffix: str | None = None, hash_buckets: int = 0, cache: str | None = None
) -> MultiTaskDataset:
    """Click and purchase of the processed Ali-CCP files; see the module docstring."""
    from mtlrun.data.formats.click_logs import read_log
    from mtlrun.data.formats.columns import parse_tasks
    from mtlrun.data.own.table import build_table, cached_specs

    folder = bf.data_root("ali_ccp", root)
    paths = [split_file(folder, split, suffix) for split in ("train", "val", "test")]
    decls = parse_tasks(
        {
            "click": {"kind": "binary", "metrics": METRICS, "primary": "auroc"},
            "purchase": {"kind": "binary", "metrics": METRICS, "primary": "auroc", "given": "click"},
        }
    )
    stored = None
    if cache is not None:  # the encoded log as memory maps: a hit skips reading the CSVs
        from mtlrun.data.formats import encoded_cache

        stored = encoded_cache.entry(cache, paths, {"dataset": "ali_ccp", "hash_buckets": hash_buckets})
        hit = encoded_cache.load(stored, lambda meta: cached_specs(decls, meta))
        if hit is not None:
            return hit
    parts = [read_log("ali_ccp", folder, p, [*LABELS, *SPARSE, *DENSE], HOW) for p in paths]
    return build_table(
        decls,
        parts,
        ", ".join(p.name for p in paths),
        split="the train, val and test files",
        features=[*SPARSE, *DENSE],
        categorical=SPARSE,
        group_by=USER,
        hash_buckets=hash_buckets,
        info={"source": str(folder), "files": [p.name for p in paths]},
        cache=stored,
    )

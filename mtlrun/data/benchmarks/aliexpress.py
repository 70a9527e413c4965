"""AliExpress (Li et al., "Improving Multi-Scenario Learning to Rank in E-commerce by Exploiting
Task Relationships in the Label Space", CIKM 2020): search logs of four countries with click and
conversion labels, the benchmark of MTReclib and torch-rechub's multi-task models.

Layout, as those libraries read it (download from the Tianchi page of the data set,
https://tianchi.aliyun.com/dataset/74690, by hand)::

    ROOT/AliExpress_<C>/train.csv     C = NL, ES, FR or US (dataset.country)
    ROOT/AliExpress_<C>/test.csv

with columns ``search_id, categorical_1..16, numerical_1..63, click, conversion``. The 16
categorical fields are integer ids, each with its own embedding table; the 63 numerical ones are
standardised on train. ``search_id`` names the query session and is no feature. Tasks: ``click``
and ``conversion`` (a conversion implies a click), binary; ``conversion`` is also scored on the
clicked rows (``auroc_given_click``: the CVR of ESMM's evaluation; plain ``auroc``: CTCVR on every
impression). A seeded ``val_fraction`` of train is the validation split; test.csv is the test split.
``dataset.cache=FOLDER`` keeps the encoded log there as memory-mapped arrays
(:mod:`mtlrun.data.formats.encoded_cache`): the full logs hold millions of rows.
"""

from __future__ import annotations

from typing import Literal

from mtlrun.data.base import DATASETS, MultiTaskDataset
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.registry import in_range

CATEGORICAL = [f"categorical_{i}" for i in range(1, 17)]
NUMERICAL = [f"numerical_{i}" for i in range(1, 64)]
COLUMNS = ["search_id", *CATEGORICAL, *NUMERICAL, "click", "conversion"]
COUNTRIES = ("NL", "ES", "FR", "US")
HOW = (
    "get it: download AliExpress_<C>.zip from https://tianchi.aliyun.com/dataset/74690 and unzip it under "
    "dataset.root (or $MTLRUN_DATA/aliexpress), keeping the AliExpress_<C> folder"
)
METRICS = ["auroc", "logloss"]


@DATASETS.register("aliexpress")
def aliexpress(
    root: str | None = None,
    country: Literal["NL", "ES", "FR", "US"] = "NL",
    val_fraction: float = 0.1,
    seed: int = 0,
    hash_buckets: int = 0,
    cache: str | None = None,
) -> MultiTaskDataset:
    """Click and conversion of one country's AliExpress log; see the module docstring."""
    from mtlrun.data.formats.click_logs import carve, read_log
    from mtlrun.data.formats.columns import parse_tasks
    from mtlrun.data.own.table import build_table, cached_specs
    from mtlrun.errors import choices_error

    if country not in COUNTRIES:
        raise choices_error("dataset.country", country, COUNTRIES)
    in_range("dataset", "val_fraction", val_fraction, 0.001, 0.5)
    folder = bf.data_root("aliexpress", root)
    paths = []
    for split in ("train", "test"):
        file = bf.DataFile(f"AliExpress_{country}/{split}.csv")
        paths.append(bf.require("aliexpress", folder, file, HOW, alternatives=[f"{split}.csv"]))
    decls = parse_tasks(
        {
            "click": {"kind": "binary", "metrics": METRICS, "primary": "auroc"},
            "conversion": {"kind": "binary", "metrics": METRICS, "primary": "auroc", "given": "click"},
        }
    )
    stored = None
    if cache is not None:  # the encoded log as memory maps: a hit skips reading the CSVs
        from mtlrun.data.formats import encoded_cache

        options = {"dataset": "aliexpress", "val_fraction": val_fraction, "seed": seed, "hash_buckets": hash_buckets}
        stored = encoded_cache.entry(cache, paths, options)
        hit = encoded_cache.load(stored, lambda meta: cached_specs(decls, meta))
        if hit is not None:
            return hit
    train, test = (read_log("aliexpress", folder, p, COLUMNS, HOW) for p in paths)
    train, val = carve(train, val_fraction, seed)
    return build_table(
        decls,
        [train, val, test],
        f"AliExpress_{country}",
        split=f"test.csv; validation: {val_fraction:g} of train.csv (seed {seed})",
        features=[*CATEGORICAL, *NUMERICAL],
        categorical=CATEGORICAL,
        hash_buckets=hash_buckets,
        info={"source": str(paths[0].parent), "country": country},
        cache=stored,
    )

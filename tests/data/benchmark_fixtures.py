"""Tiny files in the exact on-disk formats of the benchmark datasets (see each loader's docstring)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from mtlrun.data.benchmarks.celeba import ATTRIBUTES
from mtlrun.data.benchmarks.census_income import COLUMNS
from mtlrun.data.benchmarks.multi_mnist import FILES
from mtlrun.data.formats.idx import pack_images, pack_labels


def write_idx(folder: Path, n_train: int = 40, n_test: int = 20, seed: int = 0, gz: bool = True) -> dict:
    """The four MNIST-style IDX files (gzipped like the published ones); returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train": (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train)),
        "t10k": (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in arrays.items():
        for name, payload in (
            (f"{split}-images-idx3-ubyte", pack_images(images)),
            (f"{split}-labels-idx1-ubyte", pack_labels(labels)),
        ):
            assert name in FILES
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (folder / name).write_bytes(payload)
    return arrays


# Census: three real-looking records in the raw style (", " separated, 42 fields, label last)
CENSUS_ROWS = [
    "73, Not in universe, 0, 0, High school graduate, 0, Not in universe, Widowed, Not in universe or children, "
    "Not in universe, White, All other, Female, Not in universe, Not in universe, Not in labor force, 0, 0, 0, "
    "Nonfiler, Not in universe, Not in universe, Other Rel 18+ ever marr not in subfamily, "
    "Other relative of householder, 1700.09, ?, ?, ?, Not in universe under 1 year old, ?, 0, Not in universe, "
    "United-States, United-States, United-States, Native- Born in the United States, 0, Not in universe, 2, 0, 95, "
    "- 50000.",
    "58, Self-employed-not incorporated, 4, 34, Some college but no degree, 0, Not in universe, Divorced, "
    "Construction, Precision production craft & repair, White, All other, Male, Not in universe, Not in universe, "
    "Children or Armed Forces, 0, 0, 0, Head of household, South, Arkansas, Householder, Householder, 1053.55, "
    "MSA to MSA, Same county, Same county, No, Yes, 1, Not in universe, United-States, United-States, "
    "United-States, Native- Born in the United States, 0, Not in universe, 2, 52, 94, 50000+.",
    "18, Not in universe, 0, 0, 10th grade, 0, High school, Never married, Not in universe or children, "
    "Not in universe, Asian or Pacific Islander, All other, Female, Not in universe, Not in universe, "
    "Not in labor force, 0, 0, 0, Nonfiler, Not in universe, Not in universe, Child 18+ never marr Not in a subfamily, "
    "Child 18 or older, 991.95, ?, ?, ?, Not in universe under 1 year old, ?, 0, Not in universe, Vietnam, Vietnam, "
    "Vietnam, Foreign born- Not a citizen of U S, 0, Not in universe, 2, 0, 95, - 50000.",
    "48, Private, 40, 10, Bachelors degree(BA AB BS), 1200, Not in universe, Never married, Entertainment, "
    "Professional specialty, Amer Indian Aleut or Eskimo, All other, Female, No, Not in universe, "
    "Full-time schedules, 0, 0, 0, Single, Not in universe, Not in universe, Nonfamily householder, Householder, "
    "162.61, ?, ?, ?, Not in universe under 1 year old, ?, 1, Not in universe, Philippines, United-States, "
    "United-States, Native- Born in the United States, 2, Not in universe, 2, 52, 95, 50000+.",
]


def write_census(folder: Path, n_train: int = 24, n_test: int = 12) -> None:
    """census-income.data.gz / .test.gz made of the records above (train cycles them, test too)."""
    assert all(len(r.split(", ")) == len(COLUMNS) for r in CENSUS_ROWS)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("census-income.data.gz", n_train), ("census-income.test.gz", n_test)):
        lines = [CENSUS_ROWS[i % len(CENSUS_ROWS)] for i in range(n)]
        (folder / name).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def write_celeba(folder: Path, n: int = 6, seed: int = 0, size: tuple[int, int] = (12, 15)) -> np.ndarray:
    """torchvision's CelebA layout: tiny JPEGs, the attribute file (aligned format) and the partition
    file (splits 0, 1, 2 cycling). Returns the {0, 1} attribute matrix (n, 40)."""
    rng = np.random.default_rng(seed)
    images = folder / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    values = rng.integers(0, 2, (n, len(ATTRIBUTES)))
    for split in range(3):  # each split holds both values of every attribute, so AUROC is defined on it
        rows_of_split = np.arange(split, n, 3)
        if len(rows_of_split) > 1:
            constant = values[rows_of_split].min(0) == values[rows_of_split].max(0)
            values[rows_of_split[0], constant] = 1 - values[rows_of_split[0], constant]
    rows = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(images / name)
        rows.append(name + " " + " ".join(f"{2 * v - 1:2d}" for v in values[i]))
    (folder / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(ATTRIBUTES) + " \n" + "\n".join(rows) + "\n")
    (folder / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {i % 3}\n" for i in range(n)))
    return values


# QM9: CH4, NH3, H2O with the coordinates of QM9's first three molecules
MOLECULES = [
    (
        "C",
        [
            ("C", -0.0127, 1.0858, 0.0080),
            ("H", 0.0022, -0.0060, 0.0020),
            ("H", 1.0117, 1.4638, 0.0003),
            ("H", -0.5408, 1.4475, -0.8766),
            ("H", -0.5238, 1.4379, 0.9064),
        ],
    ),
    (
        "N",
        [
            ("N", -0.0404, 1.0241, 0.0626),
            ("H", 0.0173, 0.0125, -0.0274),
            ("H", 0.9158, 1.3587, -0.0288),
            ("H", -0.5203, 1.3435, -0.7755),
        ],
    ),
    ("O", [("O", -0.0343, 0.9775, 0.0076), ("H", 0.0647, 0.0206, 0.0015), ("H", 0.8717, 1.3008, 0.0007)]),
]
QM9_PROPERTIES = [
    # mol_id,A,B,C,mu,alpha,homo,lumo,gap,r2,zpve,u0,u298,h298,g298,cv,u0_atom,u298_atom,h298_atom,g298_atom
    "gdb_1,157.7118,157.70997,157.70699,0.0,13.21,-0.3877,0.1171,0.5048,35.3641,0.044749,-40.47893,-40.476062,"
    "-40.475117,-40.498597,6.469,-395.999594594,-398.643290011,-401.014646522,-372.471772148",
    "gdb_2,293.60975,293.54111,191.39397,1.6256,9.46,-0.257,0.0829,0.3399,26.1563,0.034358,-56.525887,-56.523026,"
    "-56.522082,-56.544961,6.316,-276.861363363,-278.620271194,-280.399259105,-259.338802048",
    "gdb_3,799.58812,437.90386,282.94545,1.8511,6.31,-0.2928,0.0687,0.3615,19.0002,0.021375,-76.404702,-76.401867,"
    "-76.400922,-76.422349,6.002,-213.087623653,-213.974294272,-215.159658101,-201.407171029",
]


def write_qm9(folder: Path, copies: int = 1, excluded: tuple[int, ...] = ()) -> None:
    """gdb9.sdf (V2000 blocks), gdb9.sdf.csv and uncharacterized.txt (9 header lines, 2 footer lines).

    The three molecules repeat ``copies`` times, each copy shifted by 0.01 Angstrom and with its
    properties scaled by (1 + copy / 10), so that every split of a tiny run has distinct values."""
    folder.mkdir(parents=True, exist_ok=True)
    blocks, rows = [], []
    for copy in range(copies):
        for i, (_, atoms) in enumerate(MOLECULES):
            k = copy * len(MOLECULES) + i + 1
            counts = f"{len(atoms):3d}{len(atoms) - 1:3d}  0  0  0  0  0  0  0  0999 V2000"
            lines = [f"gdb_{k}", "     RDKit          3D", "", counts]
            lines += [
                f"{x + copy / 100:10.4f}{y:10.4f}{z:10.4f} {el:<3} 0  0  0  0  0  0  0  0  0  0  0  0"
                for el, x, y, z in atoms
            ]
            lines += [f"{1:3d}{j + 2:3d}  1  0" for j in range(len(atoms) - 1)] + ["M  END"]
            blocks.append("\n".join(lines) + "\n$$$$\n")
            values = QM9_PROPERTIES[i].split(",")
            rows.append(",".join([f"gdb_{k}", *(f"{float(v) * (1 + copy / 10):.6f}" for v in values[1:])]))
    (folder / "gdb9.sdf").write_text("".join(blocks))
    header = "mol_id,A,B,C,mu,alpha,homo,lumo,gap,r2,zpve,u0,u298,h298,g298,cv,u0_atom,u298_atom,h298_atom,g298_atom"
    (folder / "gdb9.sdf.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    head = [f"header line {k}" for k in range(9)]
    body = [f"{i + 1:7d}  gdb_{i + 1}  0.0  0.0" for i in excluded]
    (folder / "uncharacterized.txt").write_text("\n".join([*head, *body, "", "footer"]) + "\n")

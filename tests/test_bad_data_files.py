"""Data read wrong without a word, or damaged where only the first batch would notice, is refused
through the real entry point: one stderr line naming the file, column, key or metric, exit 2, no
traceback, and no run folder left behind (the folder Hydra made is removed again)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_subprocess
from tests.data.dense_fixtures import write_nyuv2
from tests.data.npy_helpers import NPY_TASKS, write_npy_folder
from tests.data.owndata_files import write_image_folder

FAST = ["trainer.epochs=1", "diagnostics.every=0", "report.baselines=false"]
TABLE_TASKS = "dataset.tasks={y: {kind: binary}, r: {kind: regression}}"
TINY_SEGNET = ["encoder=segnet", "encoder.channels=[4,8]", "encoder.convs=[1,1]", "trainer.batch_size=4"]


def table_rows(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{rng.normal():.3f},{rng.normal():.3f},{i % 2},{rng.normal():.3f}" for i in range(n)]


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A launch folder with one damaged or misleading input of each kind."""
    where = tmp_path_factory.mktemp("bad_data")
    (where / "dup.csv").write_text("a,b,y,y\n" + "\n".join(r.rsplit(",", 1)[0] + ",1" for r in table_rows(60)) + "\n")
    (where / "good.csv").write_text("a,b,y,r\n" + "\n".join(table_rows(60)) + "\n")
    (where / "short_header.csv").write_text("a,y,r\n" + "\n".join(table_rows(60)) + "\n")
    rows = table_rows(60)
    rows[30] = "0.5,0.25"
    (where / "short_row.csv").write_text("a,b,y,r\n" + "\n".join(rows) + "\n")
    split = ["train"] * 40 + ["val"] * 10 + ["test"] * 10
    one_class = [
        f"{r},{s}" if s != "val" else f"{r.split(',')[0]},0.1,1,0.2,val" for r, s in zip(table_rows(60), split)
    ]
    (where / "one_class.csv").write_text("a,b,y,r,split\n" + "\n".join(one_class) + "\n")
    one_row = [f"{r},{s}" for r, s in zip(table_rows(42), ["train"] * 40 + ["val", "test"])]
    (where / "one_row.csv").write_text("a,b,y,r,split\n" + "\n".join(one_row) + "\n")
    nyu = write_nyuv2(where / "nyu", n_train=4, n_val=3)
    cut(nyu / "val" / "normal" / "2.npy")
    arrays = write_npy_folder(where / "arrays", sizes=(40, 12, 12))
    cut(arrays / "test" / "x.npy", 0.9)
    write_image_folder(where / "photos", n=20)
    return where


@dataclass(frozen=True)
class Bad:
    id: str
    args: tuple[str, ...]
    says: tuple[str, ...]


CASES = [
    Bad("table-duplicate-column", ("dataset=table", "dataset.path=dup.csv", TABLE_TASKS),
        ("dup.csv", "'y'", "duplicate")),
    Bad("table-short-header", ("dataset=table", "dataset.path=short_header.csv", TABLE_TASKS),
        ("short_header.csv", "has 3 fields but its first row (line 2) has 4")),
    Bad("table-short-row", ("dataset=table", "dataset.path=short_row.csv", TABLE_TASKS),
        ("line 32 of", "short_row.csv", "has 2 fields, its header (line 1) 4")),
    Bad("table-fractions", ("dataset=table", "dataset.path=good.csv", TABLE_TASKS, "dataset.val_fraction=0.5",
                            "dataset.test_fraction=0.6"), ("dataset.val_fraction + dataset.test_fraction = 1.1",)),
    Bad("image-folder-fractions", ("dataset=image_folder", "dataset.root=photos",
                                   "dataset.tasks={colour: {kind: classification}}", "dataset.val_fraction=0.7",
                                   "dataset.test_fraction=0.3"), ("dataset.val_fraction + dataset.test_fraction = 1",)),
    Bad("synthetic-fractions", ("dataset=synthetic", "dataset.num_samples=300", "dataset.val_fraction=0.6",
                                "dataset.test_fraction=0.5"), ("dataset.val_fraction + dataset.test_fraction = 1.1",)),
    Bad("binary-auroc-one-class", ("dataset=table", "dataset.path=one_class.csv", TABLE_TASKS),
        ("the val split", "task y", "metric auroc", "both classes")),
    Bad("regression-r2-one-row", ("dataset=table", "dataset.path=one_row.csv",
                                  "dataset.tasks={y: {kind: binary, metrics: [accuracy]}, r: {kind: regression}}"),
        ("the val split", "task r", "metric r2", "1 label(s)")),
    Bad("nyuv2-truncated-later-file", ("dataset=nyuv2", "dataset.root=nyu", "dataset.verify=false", *TINY_SEGNET),
        ("nyu/val/normal/2.npy", "cut short")),
    Bad("npy-folder-truncated-later-file", ("dataset=npy_folder", "dataset.root=arrays", NPY_TASKS),
        ("arrays/test/x.npy", "cut short")),
]  # fmt: skip


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_data_is_one_line_and_leaves_no_folder(bad: Bad, files: Path, cli):
    result = cli(*bad.args, *FAST, cwd=files)
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtlrun: error: "), result.err
    for text in bad.says:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.err
    assert not (files / "outputs").exists(), "a refused run left its folder behind"


def test_a_truncated_dense_file_is_refused_at_start_by_the_console_script(files: Path):
    result = run_subprocess("dataset=nyuv2", "dataset.root=nyu", "dataset.verify=false", *TINY_SEGNET, *FAST, cwd=files)
    assert result.code == 2
    assert result.err.strip().count("\n") == 0 and str(files / "nyu" / "val" / "normal" / "2.npy") in result.err
    assert "training" not in result.out  # refused before the first step
    assert not (files / "outputs").exists()

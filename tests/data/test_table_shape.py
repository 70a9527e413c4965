"""Tables pandas would read wrong without a word are refused in one line naming the file and the
column or line: a column name twice, a header shorter than its rows, a row cut short."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlrun.data import DATASETS
from mtlrun.data.formats.table_shape import duplicated
from mtlrun.errors import ConfigError

TASKS = {"y": {"kind": "binary"}}


def rows(n: int = 40, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{rng.normal():.3f},{rng.normal():.3f},{i % 2}" for i in range(n)]


def build(path: Path, tasks=TASKS, **options):
    return DATASETS.build("table", {"path": str(path), "tasks": tasks, **options})


def refused(path: Path, tasks=TASKS) -> str:
    with pytest.raises(ConfigError) as err:
        build(path, tasks)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


def test_duplicated_names_in_order_empty_names_exempt():
    assert duplicated(["a", "y", "b", "y", "a", "", ""]) == ["a", "y"]
    assert duplicated(["y", "y.1", "Y"]) == []


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".csv.gz"])
def test_a_duplicate_column_name_is_refused_naming_it(tmp_path: Path, suffix: str):
    sep = "\t" if suffix == ".tsv" else ","
    text = sep.join(["a", "y", "b", "y"]) + "\n" + "\n".join(r.replace(",", sep) + f"{sep}1" for r in rows()) + "\n"
    path = tmp_path / f"t{suffix}"
    path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    message = refused(path)
    assert "duplicate column names: 'y' (columns 2, 4)" in message and "'y.1'" in message


def test_a_parquet_schema_with_a_name_twice_is_refused(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table([pa.array([0.1, 0.2, 0.3]), pa.array([0, 1, 0]), pa.array([1, 0, 1])], names=["a", "y", "y"])
    pq.write_table(table, tmp_path / "t.parquet")
    assert "duplicate column names: 'y' (columns 2, 3)" in refused(tmp_path / "t.parquet")


def test_a_real_column_named_like_a_pandas_copy_is_a_feature(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_text("a,y.1,y\n" + "\n".join(rows()) + "\n")
    data = build(path)
    assert data.info["features"]["numeric"] == ["a", "y.1"]


@pytest.mark.parametrize(
    "header, row_end, fields",
    [
        ("a,y", "", "2 fields but its first row (line 2) has 3"),
        ("a,b,y", ",", "3 fields but its first row (line 2) has 4"),
    ],
)
def test_a_header_shorter_than_its_rows_is_refused_with_both_counts(tmp_path: Path, header, row_end, fields):
    path = tmp_path / "t.csv"
    path.write_text(header + "\n" + "\n".join(r + row_end for r in rows()) + "\n")
    message = refused(path)
    assert f"the header of {path} has {fields}" in message and "shift every column" in message


def test_a_row_cut_short_is_refused_naming_its_line(tmp_path: Path):
    lines = rows()
    lines[6] = "0.5,0.25"
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n" + "\n".join(lines) + "\n")
    assert "line 8 of" in refused(path) and "has 2 fields, its header (line 1) 3" in refused(path)
    lines = rows()
    lines[0] = "0.5"  # the first row
    path.write_text("a,b,y\n" + "\n".join(lines) + "\n")
    assert "line 2 of" in refused(path)


def test_missing_values_as_empty_fields_quotes_and_blank_lines_are_read(tmp_path: Path):
    lines = rows()
    lines[3] = "0.5,,"  # empty fields: missing values, the full count of delimiters
    lines[5] = '"1,5",2.0,1'  # a quoted delimiter
    lines[7] = '"multi\nline",3.0,'  # a quoted newline and an empty label
    path = tmp_path / "t.csv"
    path.write_text("\ufeffa,b,y\n" + "\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]) + "\n")
    frame = pd.read_csv(path)
    assert frame["y"].isna().sum() == 2
    data = build(path, categorical=["a"])
    assert sum(len(s) for s in (data.train, data.val, data.test)) == 40
    assert (
        data.info["tasks"]["y"]["missing_labels"]["train"]
        + sum(data.info["tasks"]["y"]["missing_labels"][s] for s in ("val", "test"))
        == 2
    )


def test_the_rules_apply_to_separate_split_files_and_labels_tables(tmp_path: Path):
    good = "a,b,y\n" + "\n".join(rows()) + "\n"
    (tmp_path / "train.csv").write_text(good)
    (tmp_path / "val.csv").write_text("a,b,y,y\n" + "\n".join(r + ",0" for r in rows(10)) + "\n")
    with pytest.raises(ConfigError, match=r"^dataset\.val: .*val\.csv has duplicate column names: 'y'"):
        DATASETS.build(
            "table", {"train": str(tmp_path / "train.csv"), "val": str(tmp_path / "val.csv"), "tasks": TASKS}
        )
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "labels.csv").write_text("file,y\n" + "\n".join(f"{i}.png,{i % 2},extra" for i in range(6)) + "\n")
    with pytest.raises(ConfigError, match=r"^dataset\.labels: the header of .*labels\.csv has 2 fields"):
        DATASETS.build("image_folder", {"root": str(photos), "tasks": TASKS})


def test_npz_and_python_columns_made_twice_are_refused(tmp_path: Path):
    np.savez(tmp_path / "t.npz", X=np.zeros((8, 2)), X_0=np.ones(8), y=np.arange(8) % 2)
    with pytest.raises(ConfigError, match=r"gives column 'X_0' twice"):
        build(tmp_path / "t.npz")
    from mtlrun.data.own.python_dataset import from_simple

    labels = {"t": np.zeros((6, 2)), "t_0": np.arange(6) % 2}
    split = (np.zeros((6, 3)), labels)
    simple = {"tasks": {"t": "multilabel", "t_0": "binary"}, "train": split, "val": split, "test": split}
    with pytest.raises(ConfigError, match=r"both make column 't_0'"):
        from_simple(simple, "dataset._target_=my.build", "python")

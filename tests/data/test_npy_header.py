"""Every ``.npy`` file of a memory-mapped dataset is checked when the dataset opens: its header
against its size, its type, its shape against its neighbours; one line names the damaged file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtlrun.data import DATASETS
from mtlrun.data.formats.npy_header import check_alike, read_header
from mtlrun.errors import ConfigError
from tests.data.dense_fixtures import write_cityscapes, write_nyuv2
from tests.data.npy_helpers import write_npy_folder

NPY_TASKS = {"cls": {"kind": "classification"}, "flag": {"kind": "binary"}, "y": {"kind": "regression"}}


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_sound_header_is_read_without_the_data(tmp_path: Path):
    for version, array in (((1, 0), np.arange(12, dtype=np.int16).reshape(3, 4)), ((2, 0), np.zeros((2, 5), "<f8"))):
        path = tmp_path / f"a{version[0]}.npy"
        with open(path, "wb") as handle:
            np.lib.format.write_array(handle, array, version=version)
        header = read_header(path, "test")
        assert header.shape == array.shape and header.dtype == array.dtype
        assert header.data_offset + header.data_bytes == header.file_size == path.stat().st_size


@pytest.mark.parametrize(
    "damage, says",
    [
        ("cut", "is cut short"),
        ("cut-header", "not a readable .npy array"),
        ("extra", "bytes after the array"),
        ("not-npy", "not a readable .npy array"),
        ("objects", "holds Python objects"),
        ("missing", "missing file"),
    ],
)
def test_each_damage_is_one_line_naming_the_file(tmp_path: Path, damage: str, says: str):
    path = tmp_path / "3.npy"
    np.save(path, np.ones((4, 5, 3), np.float32))
    if damage == "cut":
        cut(path)
    elif damage == "cut-header":
        path.write_bytes(path.read_bytes()[:20])
    elif damage == "extra":
        path.write_bytes(path.read_bytes() + b"\0" * 8)
    elif damage == "not-npy":
        path.write_bytes(b"P6\n4 5\n255\n" + b"\0" * 60)
    elif damage == "objects":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    else:
        path.unlink()
    with pytest.raises(ConfigError) as err:
        read_header(path, "dataset=x")
    message = str(err.value)
    assert says in message and str(path) in message and "\n" not in message


def test_a_later_file_of_another_shape_or_type_is_named(tmp_path: Path):
    paths = [tmp_path / f"{i}.npy" for i in range(4)]
    for path in paths:
        np.save(path, np.zeros((6, 8, 3), np.float32))
    assert check_alike(paths, "x").shape == (6, 8, 3)
    np.save(paths[2], np.zeros((6, 8, 3), np.float64))  # another number type stacks fine
    assert check_alike(paths, "x").shape == (6, 8, 3)
    np.save(paths[3], np.zeros((6, 7, 3), np.float32))
    with pytest.raises(ConfigError, match=r"3\.npy has shape \(6, 7, 3\), but 0\.npy beside it has \(6, 8, 3\)"):
        check_alike(paths, "x")
    np.save(paths[3], np.array(["a"] * 144).reshape(6, 8, 3))
    with pytest.raises(ConfigError, match=r"3\.npy holds <U1 values"):
        check_alike(paths, "x")


@pytest.mark.parametrize("field", ["image", "label", "depth", "normal"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_nyuv2_with_a_truncated_later_file_is_refused_when_opened(tmp_path: Path, field: str, split: str):
    root = write_nyuv2(tmp_path / "nyu", n_train=5, n_val=4)
    bad = root / split / field / "3.npy"
    cut(bad)
    with pytest.raises(ConfigError) as err:
        DATASETS.build("nyuv2", {"root": str(root), "verify": False})
    assert str(bad) in str(err.value) and "cut short" in str(err.value)


def test_cityscapes_with_a_wrong_shaped_later_file_is_refused_when_opened(tmp_path: Path):
    root = write_cityscapes(tmp_path / "city", n_train=4, n_val=3)
    bad = root / "val" / "label_7" / "2.npy"
    np.save(bad, np.zeros((16, 25), np.float32))
    with pytest.raises(ConfigError, match=rf"{bad}.*has shape \(16, 25\)"):
        DATASETS.build("cityscapes", {"root": str(root), "verify": False})


@pytest.mark.parametrize("name", ["x", "cls", "flag", "y"])
def test_npy_folder_with_a_truncated_later_split_file_is_refused_when_opened(tmp_path: Path, name: str):
    root = write_npy_folder(tmp_path / "arrays", sizes=(30, 10, 10))
    bad = root / "test" / f"{name}.npy"
    cut(bad, 0.8)
    with pytest.raises(ConfigError) as err:
        DATASETS.build("npy_folder", {"root": str(root), "tasks": NPY_TASKS})
    assert str(bad) in str(err.value) and "cut short" in str(err.value)


def test_npy_folder_refuses_labels_the_train_split_cannot_score(tmp_path: Path):
    root = write_npy_folder(tmp_path / "arrays", sizes=(30, 10, 10))
    np.save(root / "val" / "y.npy", np.array(["1.5"] * 10))
    with pytest.raises(ConfigError, match=r"val/y\.npy holds <U3 values"):
        DATASETS.build("npy_folder", {"root": str(root), "tasks": NPY_TASKS})
    write_npy_folder(root, sizes=(30, 10, 10))
    train_classes = int(np.load(root / "train" / "cls.npy").max()) + 1
    np.save(root / "test" / "cls.npy", np.full(10, train_classes, np.int64))
    with pytest.raises(ConfigError, match=rf"test/cls\.npy has class {train_classes}, but the train split's labels"):
        DATASETS.build("npy_folder", {"root": str(root), "tasks": NPY_TASKS})
    write_npy_folder(root, sizes=(30, 10, 10))
    np.save(root / "val" / "flag.npy", np.full(10, 2.0, np.float32))
    with pytest.raises(ConfigError, match=r"val/flag\.npy must hold 0/1 labels"):
        DATASETS.build("npy_folder", {"root": str(root), "tasks": NPY_TASKS})
    write_npy_folder(root, sizes=(30, 10, 10))
    assert len(DATASETS.build("npy_folder", {"root": str(root), "tasks": NPY_TASKS}).test) == 10

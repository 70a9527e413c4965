"""CelebA: the attribute and partition formats, uint8 images, errors, the CLI."""

from __future__ import annotations

import pytest
import torch

from mtlrun.data import DATASETS
from mtlrun.data.benchmarks.celeba import ATTRIBUTES
from mtlrun.errors import ConfigError
from tests.data.benchmark_fixtures import write_celeba

TINY = ["trainer.epochs=1", "trainer.batch_size=4", "report.baselines=false", "diagnostics.every=0"]


def test_attributes_partition_and_images(tmp_path):
    values = write_celeba(tmp_path, n=6)
    data = DATASETS.build("celeba", {"root": str(tmp_path), "verify": False, "image_size": 16})
    assert list(data.tasks) == ATTRIBUTES and all(t.kind == "binary" for t in data.tasks.values())
    assert [len(data.train), len(data.val), len(data.test)] == [2, 2, 2]  # partition cycles 0, 1, 2
    assert data.train.x.dtype == torch.uint8 and data.train.x.shape == (2, 3, 16, 16)
    assert data.input_shape == (3, 16, 16) and data.default_encoder == "resnet18"
    # image i (1-based name) is in split i % 3; its labels are row i of the attribute file
    assert data.val.targets["Smiling"].tolist() == values[[1, 4], ATTRIBUTES.index("Smiling")].tolist()
    assert data.test.targets["5_o_Clock_Shadow"].tolist() == values[[2, 5], 0].tolist()
    x, _ = next(data.train.batches(2))
    assert x.dtype == torch.float32 and x.shape == (2, 3, 16, 16)


def test_mgda_layout_is_found(tmp_path):
    write_celeba(tmp_path / "flat", n=3)
    root = tmp_path / "mgda"
    (root / "Anno").mkdir(parents=True)
    (root / "Eval").mkdir()
    (root / "Img").mkdir()
    (tmp_path / "flat" / "list_attr_celeba.txt").rename(root / "Anno" / "list_attr_celeba.txt")
    (tmp_path / "flat" / "list_eval_partition.txt").rename(root / "Eval" / "list_eval_partition.txt")
    (tmp_path / "flat" / "img_align_celeba").rename(root / "Img" / "img_align_celeba_png")
    data = DATASETS.build("celeba", {"root": str(root), "verify": False, "image_size": 8})
    assert len(data.train) == len(data.val) == len(data.test) == 1


def test_missing_and_malformed_files(tmp_path):
    write_celeba(tmp_path, n=3)
    with pytest.raises(ConfigError, match="MD5"):
        DATASETS.build("celeba", {"root": str(tmp_path)})
    (tmp_path / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(ConfigError, match="missing image img_align_celeba/000002.jpg") as info:
        DATASETS.build("celeba", {"root": str(tmp_path), "verify": False})
    assert "\n" not in str(info.value) and "mmlab.ie.cuhk.edu.hk" in str(info.value)
    (tmp_path / "img_align_celeba" / "000002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError, match="cannot read image img_align_celeba/000002.jpg"):
        DATASETS.build("celeba", {"root": str(tmp_path), "verify": False})
    text = (tmp_path / "list_attr_celeba.txt").read_text().replace(" 1", " 2", 1).replace("-1", " 0", 1)
    (tmp_path / "list_attr_celeba.txt").write_text(text)
    with pytest.raises(ConfigError, match="attribute values must be -1 or 1"):
        DATASETS.build("celeba", {"root": str(tmp_path), "verify": False})
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(ConfigError, match="missing file list_eval_partition.txt"):
        DATASETS.build("celeba", {"root": str(tmp_path), "verify": False})
    with pytest.raises(ConfigError, match="no stable public address"):
        DATASETS.build("celeba", {"root": str(tmp_path), "download": True})


def test_cli_run_with_a_small_task_set(cli, tmp_path):
    write_celeba(tmp_path / "data", n=9)
    args = ["dataset=celeba", f"dataset.root={tmp_path / 'data'}", "dataset.verify=false", "dataset.image_size=16"]
    result = cli(*args, "tasks=celeba5", "encoder.width=4", "encoder=resnet18", *TINY)
    assert result.code == 0, result.err
    assert result.summary()["run"]["tasks"] == ["Male", "Smiling", "Young", "Eyeglasses", "Wearing_Hat"]

"""MultiMNIST / MultiFashion: IDX parsing, Sener & Koltun's composition, errors, the CLI, real Fashion-MNIST."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtlrun.data import DATASETS
from mtlrun.data.benchmarks.multi_mnist import MEAN, STD, compose
from mtlrun.data.formats.idx import IdxFormatError, pack_images, pack_labels, parse_images, parse_labels
from mtlrun.errors import ConfigError
from tests.data.benchmark_fixtures import write_idx

TINY = ["trainer.epochs=1", "trainer.batch_size=16", "report.baselines=false", "diagnostics.every=0"]
DEBIAN = Path(os.environ.get("MTLRUN_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


def test_idx_round_trip_and_header_checks():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_images(pack_images(images)), images)
    assert np.array_equal(parse_labels(pack_labels(np.array([7, 1]))), [7, 1])
    with pytest.raises(IdxFormatError, match="magic number 2049"):
        parse_images(pack_labels(np.arange(12)))
    with pytest.raises(IdxFormatError, match="header promises 2 images"):
        parse_images(pack_images(images)[:-1])


def test_composite_is_the_pixelwise_max_of_shifted_images_resized_like_pil():
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    right = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    canvas = np.zeros((36, 36), dtype=np.uint8)
    canvas[:28, :28] = left[1]
    canvas[6:34, 6:34] = np.maximum(canvas[6:34, 6:34], right[1])
    expected = np.asarray(Image.fromarray(canvas).resize((28, 28), Image.NEAREST))
    assert np.array_equal(compose(left, right)[1], expected)
    # a lone left image stays in the top-left corner, a lone right one in the bottom-right
    blank = np.zeros_like(left[:1])
    alone = compose(left[:1], blank)[0]
    assert alone[22:, :].max() == 0 and alone[:, 22:].max() == 0 and alone[:22, :22].max() > 0
    alone = compose(blank, right[:1])[0]
    assert alone[:5, :].max() == 0 and alone[:, :5].max() == 0 and alone[5:, 5:].max() > 0


def test_fixture_builds_with_partners_from_the_same_split(tmp_path):
    arrays = write_idx(tmp_path, n_train=40, n_test=20)
    data = DATASETS.build("multi_mnist", {"root": str(tmp_path), "verify": False, "val_fraction": 0.25})
    assert [len(data.train), len(data.val), len(data.test)] == [30, 10, 20]
    assert data.train.x.dtype == torch.uint8 and data.input_shape == (1, 28, 28)
    assert data.default_encoder == "lenet" and list(data.tasks) == ["left", "right"]
    # test composite i has left = test image i; its right label is some test label
    images, labels = arrays["t10k"]
    assert torch.equal(data.test.targets["left"], torch.from_numpy(labels.astype(np.int64)))
    assert set(data.test.targets["right"].tolist()) <= set(labels.tolist())
    x, _ = next(data.test.batches(4))
    assert x.dtype == torch.float32
    expected = (data.test.x[:4].float() / 255 - MEAN) / STD
    assert torch.allclose(x, expected)
    again = DATASETS.build("multi_mnist", {"root": str(tmp_path), "verify": False, "val_fraction": 0.25})
    assert torch.equal(again.train.x, data.train.x)


def test_verify_rejects_a_subsample_and_a_wrong_checksum(tmp_path):
    write_idx(tmp_path)
    with pytest.raises(ConfigError, match="MD5") as info:
        DATASETS.build("multi_mnist", {"root": str(tmp_path)})
    assert "\n" not in str(info.value) and "dataset.verify=false" in str(info.value)


def test_missing_and_malformed_files_give_one_line_errors(tmp_path):
    write_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ConfigError) as info:
        DATASETS.build("multi_mnist", {"root": str(tmp_path), "verify": False})
    message = str(info.value)
    assert "\n" not in message and "missing file t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path) in message and "ossci-datasets" in message
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte.gz is not a valid IDX file: "):
        DATASETS.build("multi_mnist", {"root": str(tmp_path), "verify": False})
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(ConfigError, match="not a valid gzip file"):
        DATASETS.build("multi_mnist", {"root": str(tmp_path), "verify": False})


def test_data_root_from_environment(tmp_path, monkeypatch):
    write_idx(tmp_path / "multi_fashion", gz=False)
    monkeypatch.setenv("MTLRUN_DATA", str(tmp_path))
    data = DATASETS.build("multi_fashion", {"verify": False})
    assert data.info["source"] == str(tmp_path / "multi_fashion")
    mixed = DATASETS.build("multi_fashion_mnist", {"verify": False, "root": str(tmp_path / "multi_fashion")})
    assert mixed.info["fashion_source"] == str(tmp_path / "multi_fashion")


def test_cli_run_on_a_tiny_folder(cli, tmp_path):
    write_idx(tmp_path / "data", n_train=48, n_test=16)
    result = cli("dataset=multi_mnist", f"dataset.root={tmp_path / 'data'}", "dataset.verify=false", *TINY)
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed" and summary["run"]["tasks"] == ["left", "right"]
    assert summary["run"]["encoder"] == "lenet"
    missing = cli("dataset=multi_mnist", f"dataset.root={tmp_path / 'nowhere'}", *TINY)
    assert missing.code == 2 and "missing file train-images-idx3-ubyte.gz" in missing.err
    assert "Traceback" not in missing.err


@pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").exists(),
    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN}); apt-get install dataset-fashion-mnist",
)
def test_real_multi_fashion_from_debian(cli, tmp_path):
    from mtlrun.data.formats.idx import parse_images as images_of
    from mtlrun.data.formats.idx import parse_labels as labels_of

    data = DATASETS.build("multi_fashion", {"root": str(DEBIAN)})  # verify=true: published counts and MD5s
    assert len(data.train) + len(data.val) == 60000 and len(data.test) == 10000
    test_images = images_of(gzip.decompress((DEBIAN / "t10k-images-idx3-ubyte.gz").read_bytes()))
    test_labels = labels_of(gzip.decompress((DEBIAN / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    rng = np.random.default_rng(0)
    rng.integers(0, 60000, size=60000)  # the training partners are drawn first
    partner = int(rng.integers(0, 10000, size=10000)[0])
    assert data.test.targets["left"][0].item() == test_labels[0] == 9  # the first test item is an ankle boot
    assert data.test.targets["right"][0].item() == test_labels[partner]
    assert np.array_equal(data.test.x[0, 0].numpy(), compose(test_images[:1], test_images[partner : partner + 1])[0])
    result = cli(
        "dataset=multi_fashion",
        f"dataset.root={DEBIAN}",
        "dataset.train_limit=6000",
        "trainer.batch_size=64",
        *TINY[:1],
        *TINY[2:],
    )
    assert result.code == 0, result.err
    test = result.summary()["metrics"]["last"]["test"]
    assert test["left"]["accuracy"] > 0.4 and test["right"]["accuracy"] > 0.4, test  # chance: 0.1

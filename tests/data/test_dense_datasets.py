"""NYUv2 and Cityscapes loaders on fake folders: layout checks, the split contract, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtlrun.data import DATASETS
from mtlrun.data.formats.npy_folders import augment_batch
from mtlrun.errors import ConfigError
from tests.data.dense_fixtures import write_cityscapes, write_nyuv2


def build(name: str, **options):
    return DATASETS.build(name, {"verify": False, **options})


def test_nyuv2_splits_shapes_and_invalid_markers(tmp_path: Path):
    root = write_nyuv2(tmp_path / "nyu", n_train=5, n_val=3)
    data = build("nyuv2", root=str(root))
    assert (len(data.train), len(data.val), len(data.test)) == (5, 3, 3)
    assert data.val is data.test and data.input_shape == (3, 16, 24)
    batches = list(data.train.batches(2))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1] == [2, 2, 1][: data.train.num_batches(2)]
    x, y = batches[0]
    assert x.shape == (2, 3, 16, 24) and x.dtype == torch.float32
    assert y["segmentation"].shape == (2, 16, 24) and y["segmentation"].dtype == torch.long
    assert y["depth"].shape == (2, 1, 16, 24) and y["normal"].shape == (2, 3, 16, 24)
    stored = np.load(root / "train" / "normal" / "1.npy")
    torch.testing.assert_close(y["normal"][1], torch.from_numpy(stored).permute(2, 0, 1))
    assert (y["segmentation"] == -1).any() and (y["depth"] == 0).any()


def test_split_contract_select_to_shuffle_and_holdout(tmp_path: Path):
    root = write_nyuv2(tmp_path / "nyu", n_train=6, n_val=2)
    data = build("nyuv2", root=str(root), val_size=2, seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (4, 2, 2)
    assert set(data.train.indices).isdisjoint(data.val.indices)
    narrowed = data.select(["depth"])
    x, y = next(narrowed.train.to("cpu").batches(4))
    assert list(y) == ["depth"] and narrowed.train.device == torch.device("cpu")
    order = [next(data.train.batches(1, shuffle=True, generator=torch.Generator().manual_seed(s)))[0] for s in (0, 0)]
    torch.testing.assert_close(order[0], order[1])
    image, targets = data.train[0]
    assert image.shape == (3, 16, 24) and set(targets) == {"segmentation", "depth", "normal"}


def test_augmentation_scales_depth_and_flips_normals():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    normal = torch.nn.functional.normalize(torch.randn(64, 3, 8, 8), dim=1)
    depth = torch.full((64, 1, 8, 8), 2.0)
    label = torch.randint(0, 5, (64, 8, 8))
    kinds = {"segmentation": "label", "depth": "depth", "normal": "normal"}
    _, y = augment_batch(x, {"segmentation": label, "depth": depth, "normal": normal}, kinds, g)
    scales = 2.0 / y["depth"][:, 0, 0, 0]
    nearest = [min((1.0, 1.2, 1.5), key=lambda c: abs(c - s)) for s in scales.tolist()]
    torch.testing.assert_close(scales, torch.tensor(nearest))
    assert set(nearest) == {1.0, 1.2, 1.5}
    assert y["segmentation"].dtype == torch.long
    assert set(y["segmentation"].unique().tolist()) <= set(range(5))
    # unscaled examples are either unchanged or flipped with the x component negated
    same = torch.isclose(scales, torch.tensor(1.0))
    for n in torch.nonzero(same).flatten().tolist():
        flipped = normal[n].flip(-1) * torch.tensor([-1.0, 1.0, 1.0])[:, None, None]
        assert torch.allclose(y["normal"][n], normal[n]) or torch.allclose(y["normal"][n], flipped)
    assert any(not torch.allclose(y["normal"][n], normal[n]) for n in torch.nonzero(same).flatten().tolist())


def test_augment_only_on_shuffled_training_batches(tmp_path: Path):
    root = write_nyuv2(tmp_path / "nyu", n_train=4, n_val=2)
    data = build("nyuv2", root=str(root), augment=True)
    plain = next(data.train.batches(4))[0]
    stored = torch.from_numpy(np.load(root / "train" / "image" / "0.npy")).permute(2, 0, 1)
    torch.testing.assert_close(plain[0], stored)
    a = next(data.train.batches(4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    b = next(data.train.batches(4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(a[0], b[0])
    assert not data.test.augment


def test_cityscapes_label_folders(tmp_path: Path):
    root = write_cityscapes(tmp_path / "city", n_train=3, n_val=2)
    seven = build("cityscapes", root=str(root))
    nineteen = build("cityscapes", root=str(root), labels="label_19")
    assert seven.tasks["segmentation"].out_dim == 7 and nineteen.tasks["segmentation"].out_dim == 19
    assert set(seven.tasks) == {"segmentation", "depth"}
    with pytest.raises(ConfigError, match="choose one of: label_19, label_7"):
        build("cityscapes", root=str(root), labels="label_2")


def test_data_root_resolution_and_missing_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_nyuv2(tmp_path / "store" / "nyuv2", n_train=2, n_val=2)
    monkeypatch.setenv("MTLRUN_DATA", str(tmp_path / "store"))
    assert len(build("nyuv2").train) == 2
    monkeypatch.delenv("MTLRUN_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError) as info:
        build("nyuv2")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "home" / ".cache" / "mtlrun" / "nyuv2") in message
    assert "dropbox" in message and "dataset.root" in message


def test_verify_checks_published_counts_and_layout(tmp_path: Path):
    root = write_nyuv2(tmp_path / "nyu", n_train=3, n_val=2)
    with pytest.raises(ConfigError, match="published train split has 795.*dataset.verify=false"):
        DATASETS.build("nyuv2", {"root": str(root)})
    (root / "train" / "depth" / "2.npy").unlink()
    with pytest.raises(ConfigError, match="depth holds 2 examples"):
        build("nyuv2", root=str(root))
    (root / "train" / "image" / "1.npy").unlink()
    with pytest.raises(ConfigError, match="not 1.npy"):
        build("nyuv2", root=str(root))

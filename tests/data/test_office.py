"""Office-31 / Office-Home: folder layout, LibMTL list files, seeded splits, errors, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from mtlrun.data import DATASETS
from mtlrun.data.multi_input import MultiInputDataset
from mtlrun.errors import ConfigError

DOMAINS = ("amazon", "dslr", "webcam")
CLASSES = ("back_pack", "bike", "mug")  # sorted: indices 0, 1, 2
#: LibMTL's ids are not alphabetical: back_pack 0, mug 22, bike 27
LIBMTL = {"back_pack": 0, "bike": 27, "mug": 22}


def colour(domain: int, cls: int, k: int) -> tuple[int, int, int]:
    return (40 * cls + 10, 60 * domain + 5, 20 * k)


def write_office31(root: Path, per_class: int = 5, lists: bool = False) -> None:
    """Office-31's layout ``<domain>/images/<class>/frame_XXXX.jpg`` with flat-colour 8x8 images."""
    for d, domain in enumerate(DOMAINS):
        lines: list[str] = []
        for c, name in enumerate(CLASSES):
            folder = root / domain / "images" / name
            folder.mkdir(parents=True)
            for k in range(per_class):
                Image.new("RGB", (8, 8), colour(d, c, k)).save(folder / f"frame_{k:04d}.jpg", quality=100)
                lines.append(f"{domain}/images/{name}/frame_{k:04d}.jpg {LIBMTL[name]}")
        if lists:  # LibMTL-style: every class in train, val and test
            for s, split in enumerate(("train", "val", "test")):
                chosen = [line for i, line in enumerate(lines) if i % per_class in ((0, 1, 2), (3,), (4,))[s]]
                (root / f"{domain}_{split}.txt").write_text("\n".join(chosen) + "\n")


def build(root: Path, name: str = "office31", **options):
    return DATASETS.build(name, {"root": str(root), "verify": False, "size": 8, **options})


def test_list_files_give_the_splits_and_classes_come_from_folders(tmp_path):
    write_office31(tmp_path, lists=True)
    data = build(tmp_path)
    assert isinstance(data, MultiInputDataset) and list(data.tasks) == list(DOMAINS)
    assert all(t.kind == "classification" and t.out_dim == 3 for t in data.tasks.values())
    assert data.train.sizes() == {d: 9 for d in DOMAINS} and data.val.sizes() == {d: 3 for d in DOMAINS}
    assert data.info["split"] == "libmtl_lists" and data.default_encoder == "resnet18"
    dslr = data.train.splits["dslr"]
    assert dslr.x.dtype == torch.uint8 and dslr.x.shape == (9, 3, 8, 8)
    # lines are class-major: 3 train images of back_pack, bike, mug; labels by sorted folder name
    assert dslr.targets["dslr"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # each image is its flat colour: red channel tells the class, green the domain
    pixel = dslr.x[:, :, 4, 4].int()
    expected = torch.tensor([colour(1, c, k) for c in range(3) for k in range(3)])
    assert (pixel - expected).abs().max() <= 3
    x, y = next(data.val.batches(2))["webcam"]
    assert x.dtype == torch.float32 and x.shape == (2, 3, 8, 8) and set(y) == {"webcam"}


def test_seeded_split_without_list_files(tmp_path):
    write_office31(tmp_path, per_class=5)
    data = build(tmp_path, seed=3)
    assert data.info["split"].startswith("seeded_60_20_20")
    assert data.train.sizes() == {d: 9 for d in DOMAINS} and data.test.sizes() == {d: 3 for d in DOMAINS}
    again, other = build(tmp_path, seed=3), build(tmp_path, seed=4)
    for d in DOMAINS:
        assert torch.equal(data.train.splits[d].x, again.train.splits[d].x)
        # the three splits partition the domain's 15 images
        labels = torch.cat([s.splits[d].targets[d] for s in (data.train, data.val, data.test)])
        assert sorted(labels.tolist()) == [0] * 5 + [1] * 5 + [2] * 5
    assert any(not torch.equal(data.test.splits[d].x, other.test.splits[d].x) for d in DOMAINS)


def test_office_home_layout_with_real_world_space(tmp_path):
    for d, domain in enumerate(("Art", "Clipart", "Product", "Real World")):
        for c, name in enumerate(("Bike", "Mug")):
            (tmp_path / domain / name).mkdir(parents=True)
            for k in range(5):
                Image.new("RGB", (10, 6), colour(d, c, k)).save(tmp_path / domain / name / f"{k:05d}.png")
    data = build(tmp_path, name="office_home")
    assert list(data.tasks) == ["Art", "Clipart", "Product", "Real_World"]
    assert data.tasks["Real_World"].out_dim == 2 and sum(data.test.sizes().values()) == 8


def test_verify_checks_classes_and_counts(tmp_path):
    write_office31(tmp_path, lists=True)
    with pytest.raises(ConfigError, match="found 3 class folders, not 31") as info:
        DATASETS.build("office31", {"root": str(tmp_path), "size": 8})
    assert "\n" not in str(info.value) and "cc.gatech.edu" in str(info.value)


def test_missing_folder_and_list_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="data folder not found"):
        build(tmp_path / "nowhere")
    write_office31(tmp_path, lists=True)
    (tmp_path / "dslr_val.txt").unlink()
    with pytest.raises(ConfigError, match="missing list file dslr_val.txt"):
        build(tmp_path)
    (tmp_path / "dslr_train.txt").write_text("dslr/images/mug/frame_0000.jpg two\n")
    for split in ("val", "test"):
        (tmp_path / f"dslr_{split}.txt").write_text("dslr/images/mug/frame_0000.jpg 22\n")
    with pytest.raises(ConfigError, match="dslr_train.txt line 1 must be '<image path> <integer label>'"):
        build(tmp_path)
    for name in tmp_path.glob("*.txt"):
        name.unlink()
    for path in sorted((tmp_path / "webcam").rglob("*.jpg")):
        path.unlink()
    with pytest.raises(ConfigError, match=r"webcam/images/ holds no <class>/\*.jpg images"):
        build(tmp_path)
    shutil.rmtree(tmp_path / "webcam")
    with pytest.raises(ConfigError, match=r"missing folder webcam/ \(looked in ") as info:
        build(tmp_path)
    assert "\n" not in str(info.value) and "get it:" in str(info.value)


def test_inconsistent_libmtl_label_is_an_error(tmp_path):
    write_office31(tmp_path, lists=True)
    text = (tmp_path / "amazon_val.txt").read_text().replace(" 22", " 0")
    (tmp_path / "amazon_val.txt").write_text(text)
    with pytest.raises(ConfigError, match="label 0 names class mug, earlier back_pack"):
        build(tmp_path)
    (tmp_path / "amazon_val.txt").write_text(text.replace("mug/frame_0003.jpg 0", "mug/frame_0003.jpg 23"))
    with pytest.raises(ConfigError, match="class mug has label 23, earlier 22"):
        build(tmp_path)
    (tmp_path / "amazon_val.txt").write_text(text.replace("mug/frame_0003.jpg 0", "mug/frame_0099.jpg 22"))
    with pytest.raises(ConfigError, match="missing image amazon/images/mug/frame_0099.jpg"):
        build(tmp_path)


def test_unreadable_image_names_its_path(tmp_path):
    write_office31(tmp_path)
    bad = tmp_path / "amazon" / "images" / "bike" / "frame_0002.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError, match="cannot read image .*amazon/images/bike/frame_0002.jpg") as info:
        build(tmp_path)
    assert "\n" not in str(info.value) and "dataset=office31" in str(info.value)


def test_cli_trains_hps_on_the_office_folder(cli, tmp_path):
    data = tmp_path / "office"
    write_office31(data, per_class=4, lists=False)
    result = cli(
        "dataset=office31",
        f"dataset.root={data}",
        "dataset.verify=false",
        "dataset.size=8",
        "arch=hps",
        "trainer.epochs=1",
        "trainer.batch_size=4",
        "report.baselines=false",
        "diagnostics.every=0",
    )
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed"
    folder = result.run_dirs()[-1]
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert summary["run"]["encoder"] == "resnet18"  # encoder=auto on images
    assert summary["dataset_info"]["sizes"] == {d: [8, 2, 2] for d in DOMAINS}
    tested = {(r["task"], r["metric"]) for r in rows if r["split"] == "test"}
    assert tested == {(d, m) for d in DOMAINS for m in ("accuracy", "f1_macro")}


def test_verify_accepts_the_published_counts_and_refuses_others(tmp_path, monkeypatch):
    from dataclasses import replace

    from mtlrun.data.benchmarks import office

    write_office31(tmp_path, lists=True)
    published = replace(office.OFFICE31, num_classes=3, counts={d: (9, 3, 3) for d in DOMAINS})
    monkeypatch.setattr(office, "OFFICE31", published)
    data = DATASETS.build("office31", {"root": str(tmp_path), "size": 8})
    assert data.test.sizes() == {d: 3 for d in DOMAINS}
    monkeypatch.setattr(office, "OFFICE31", replace(published, counts={**published.counts, "dslr": (287, 89, 122)}))
    with pytest.raises(ConfigError, match=r"domain dslr has \(9, 3, 3\) train/val/test images, not the published"):
        DATASETS.build("office31", {"root": str(tmp_path), "size": 8})
    for path in tmp_path.glob("*.txt"):  # the seeded split: only the domain's total is checked
        path.unlink()
    assert DATASETS.build("office31", {"root": str(tmp_path), "size": 8, "verify": False}).train.sizes()["dslr"] == 9
    with pytest.raises(ConfigError, match=r"domain dslr has \(9, 3, 3\)"):
        DATASETS.build("office31", {"root": str(tmp_path), "size": 8})


def test_large_folders_are_cached_and_rebuilt_when_an_image_changes(tmp_path, monkeypatch):
    from mtlrun.data.benchmarks import office

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MTLRUN_DATA", raising=False)
    monkeypatch.setattr(office, "CACHE_MIN_IMAGES", 10)
    write_office31(tmp_path / "data", lists=True)
    first = build(tmp_path / "data")
    cached = list((tmp_path / "cache" / "mtlrun" / "office31").glob("images_8_*.npy"))
    assert len(cached) == 1
    calls = []
    monkeypatch.setattr(office, "load_images", lambda *a: calls.append(a) or pytest.fail("decoded again"))
    again = build(tmp_path / "data")
    assert all(torch.equal(first.test.splits[d].x, again.test.splits[d].x) for d in DOMAINS)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MTLRUN_DATA", raising=False)
    monkeypatch.setattr(office, "CACHE_MIN_IMAGES", 10)
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "data" / "dslr" / "images" / "mug" / "frame_0004.jpg")
    changed = build(tmp_path / "data")
    assert len(list((tmp_path / "cache" / "mtlrun" / "office31").glob("images_8_*.npy"))) == 2
    assert int(changed.test.splits["dslr"].x[-1].min()) > 240  # the new white image, not the cached one

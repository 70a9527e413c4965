"""Cityscapes as preprocessed by MTAN (Liu et al., CVPR 2019): segmentation and inverse depth at 128x256.

The 2,975 train and 500 validation images of Cityscapes (Cordts et al., CVPR 2016) resized to
128x256. Layout ``ROOT/{train,val}/{image,label_7,label_19,depth}/<i>.npy`` (image (128, 256, 3) in
[0, 1]; labels (128, 256) with -1 invalid; depth (128, 256, 1), inverse depth from disparity, 0
invalid). ``labels`` picks the label folder: ``label_7`` (the 7 categories used by the Nash-MTL and
FAMO tables) or ``label_19``; the class count is read from the folder name ``label_<K>``, or given
as ``num_classes`` for a renamed folder (LibMTL's copy calls it ``label``). The published ``val``
folder is the test split, as in those papers.
"""

from __future__ import annotations

import re

from mtlrun.data.base import DATASETS, MultiTaskDataset
from mtlrun.data.dense_tasks import depth_task, segmentation_task
from mtlrun.data.formats.npy_folders import benchmark_splits, data_root
from mtlrun.errors import ConfigError

PUBLISHED = {"train": 2975, "val": 500}
SIZE = (128, 256)
HOW_TO_GET = (
    "download MTAN's preprocessed 128x256 Cityscapes (https://www.dropbox.com/sh/gaw6vh6qusoyms6/"
    "AADwWi0Tp3E3M4B2xzeGlsEna?dl=0, linked from github.com/lorenmt/mtan) and unpack it so that "
    "ROOT/train/image/0.npy exists"
)


def classes_of(labels: str, num_classes: int | None) -> int:
    if num_classes is not None:
        if num_classes < 2:
            raise ConfigError(f"dataset.num_classes={num_classes} must be >= 2")
        return num_classes
    match = re.fullmatch(r"label_(\d+)", labels)
    if not match:
        raise ConfigError(
            f"dataset.labels={labels} does not name its class count (label_7, label_19); set dataset.num_classes"
        )
    return int(match.group(1))


@DATASETS.register("cityscapes")
def cityscapes(
    root: str | None = None,
    labels: str = "label_7",
    num_classes: int | None = None,
    verify: bool = True,
    augment: bool = False,
    val_size: int = 0,
    seed: int = 0,
) -> MultiTaskDataset:
    """Tasks ``segmentation`` and ``depth`` over memory-mapped files."""
    classes = classes_of(labels, num_classes)
    path = data_root("cityscapes", root, HOW_TO_GET)
    if not (path / "train" / labels).is_dir():
        found = sorted(p.name for p in (path / "train").iterdir() if p.is_dir() and p.name.startswith("label"))
        choices = ", ".join(found) or "(none)"
        raise ConfigError(f"dataset.labels={labels}: no folder {path / 'train' / labels}; choose one of: {choices}")
    folders = {"x": "image", "segmentation": labels, "depth": "depth"}
    kinds = {"segmentation": "label", "depth": "depth"}
    train, val, test, hw = benchmark_splits(
        path,
        folders,
        kinds,
        published=PUBLISHED if verify else None,
        size=SIZE if verify else None,
        augment=augment,
        val_size=val_size,
        seed=seed,
    )
    return MultiTaskDataset(
        tasks={"segmentation": segmentation_task("segmentation", classes), "depth": depth_task("depth")},
        train=train,
        val=val,
        test=test,
        input_shape=(3, *hw),
        default_encoder="segnet",
        info={
            "root": str(path),
            "labels": labels,
            "num_classes": classes,
            "sizes": [len(train), len(val), len(test)],
            "val_is_test": val is test,
        },
    )

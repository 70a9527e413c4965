"""NYUv2 as preprocessed by MTAN (Liu et al., CVPR 2019): 13-class segmentation, depth, normals.

The 1,449 densely labelled NYU Depth v2 images (Silberman et al., ECCV 2012), resized to 288x384
and split 795 train / 654 test, with the 13 semantic classes of Couprie et al. (2013) and the
surface normals of Eigen & Fergus (2015). Layout ``ROOT/{train,val}/{image,label,depth,normal}/<i>.npy``
(image (288, 384, 3) in [0, 1]; label (288, 384) with -1 unlabeled; depth (288, 384, 1) in metres,
0 invalid; normal (288, 384, 3) unit vectors, all-zero invalid). The published ``val`` folder is
the test split of the Nash-MTL and FAMO tables (see :func:`~mtlrun.data.formats.npy_folders.benchmark_splits`).
"""

from __future__ import annotations

from mtlrun.data.base import DATASETS, MultiTaskDataset
from mtlrun.data.dense_tasks import depth_task, normal_task, segmentation_task
from mtlrun.data.formats.npy_folders import benchmark_splits, data_root

NUM_CLASSES = 13
PUBLISHED = {"train": 795, "val": 654}
SIZE = (288, 384)
HOW_TO_GET = (
    "download MTAN's preprocessed NYUv2 (https://www.dropbox.com/sh/86nssgwm6hm3vkb/AACrnUQ4GxpdrBbLjb6n-mWNa?dl=0, "
    "linked from github.com/lorenmt/mtan) and unpack it so that ROOT/train/image/0.npy exists"
)


@DATASETS.register("nyuv2")
def nyuv2(
    root: str | None = None,
    verify: bool = True,
    augment: bool = False,
    val_size: int = 0,
    seed: int = 0,
) -> MultiTaskDataset:
    """Tasks ``segmentation`` (13 classes), ``depth`` and ``normal`` over memory-mapped files.

    ``verify`` checks the published counts (795/654) and size (288x384); turn it off for smaller
    folders. ``augment`` applies MTAN's scale-crop and flip to training batches.
    """
    path = data_root("nyuv2", root, HOW_TO_GET)
    folders = {"x": "image", "segmentation": "label", "depth": "depth", "normal": "normal"}
    kinds = {"segmentation": "label", "depth": "depth", "normal": "normal"}
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
        tasks={
            "segmentation": segmentation_task("segmentation", NUM_CLASSES),
            "depth": depth_task("depth"),
            "normal": normal_task("normal"),
        },
        train=train,
        val=val,
        test=test,
        input_shape=(3, *hw),
        default_encoder="segnet",
        info={"root": str(path), "sizes": [len(train), len(val), len(test)], "val_is_test": val is test},
    )

"""CelebA (Liu et al., ICCV 2015): 40 binary face attributes, the 40-task benchmark of Sener & Koltun.

Each aligned face image (178x218 JPEG, or the PNG release) is resized to ``image_size`` squared
(64 by default, as Sener & Koltun) with bilinear sampling and kept in memory as uint8; the
official partition file gives train (0), validation (1) and test (2). Tasks are the attributes,
named as in the attribute file (``Smiling``, ``Male``, ``5_o_Clock_Shadow``, ...), each binary.

Layouts accepted under the data root: torchvision's (``[celeba/]list_attr_celeba.txt``,
``list_eval_partition.txt``, ``img_align_celeba/``) and Sener & Koltun's (``Anno/``, ``Eval/``,
``Img/img_align_celeba_png/``). The images have no stable public address (Google Drive), so
``dataset.download`` is refused with where to get them. Decoding 200k JPEGs takes minutes; the
resized array is cached as ``images_<size>.npy`` in ``~/.cache/mtlrun/celeba/`` keyed by the
annotation files' digest.
"""

from __future__ import annotations

import hashlib
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mtlrun.data.base import DATASETS, MultiTaskDataset
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.data.formats.byte_images import ByteImageSplit
from mtlrun.data.formats.npy_header import read_header
from mtlrun.data.tasks import binary_task
from mtlrun.errors import ConfigError
from mtlrun.lazy import lazy_module
from mtlrun.registry import in_range

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")
Image = lazy_module("PIL.Image")  # decoding images only when a folder is read

ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
ATTR = bf.DataFile("list_attr_celeba.txt", md5="75e246fa4810816ffd6ee81facbd244c")
PARTITION = bf.DataFile("list_eval_partition.txt", md5="d32c9cbf5e040fd4025c592c306e6668")
COUNT = 202599
IMAGE_FOLDERS = ("img_align_celeba", "Img/img_align_celeba_png", "Img/img_align_celeba")
#: per-channel normalisation with the usual ImageNet statistics
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HOW = (
    "get it: download img_align_celeba.zip, list_attr_celeba.txt and list_eval_partition.txt from "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive) and unzip the images next to them; "
    "point dataset.root (or $MTLRUN_DATA) at that folder"
)


def _error(root: Path, problem: str) -> Exception:
    return bf.data_error("celeba", root, problem, HOW)


def find_layout(root: Path) -> tuple[Path, Path, Path]:
    """The attribute file, the partition file and the image folder under ``root``."""
    for base in (root, root / "celeba"):
        attr = bf.locate(base, [ATTR.name, "Anno/" + ATTR.name])
        if attr is not None:
            break
    else:
        raise _error(root, f"missing file {ATTR.name}")
    partition = bf.locate(base, [PARTITION.name, "Eval/" + PARTITION.name])
    if partition is None:
        raise _error(root, f"missing file {PARTITION.name}")
    images = next((base / f for f in IMAGE_FOLDERS if (base / f).is_dir()), None)
    if images is None:
        raise _error(root, f"missing image folder {IMAGE_FOLDERS[0]}/ (or Img/img_align_celeba_png/)")
    return attr, partition, images


def read_attributes(root: Path, path: Path, raw: bytes) -> pd.DataFrame:
    """The attribute file: a count line, the 40 names, then ``file v1 ... v40`` with values -1/1."""
    lines = raw.decode("utf-8", errors="replace").splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise _error(root, f"{path.name} must start with the image count, then the 40 attribute names")
    names = lines[1].split()
    if names != ATTRIBUTES:
        raise _error(root, f"{path.name}: line 2 must name the 40 CelebA attributes in order (got {len(names)} names)")
    try:
        table = pd.read_csv(BytesIO(raw), sep=r"\s+", skiprows=2, header=None, dtype={0: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as ex:
        raise _error(root, f"{path.name} is not in the CelebA attribute format: {str(ex).splitlines()[0]}") from None
    if table.shape[1] != 41:
        raise _error(root, f"{path.name}: rows have {table.shape[1]} fields, not a file name and 40 values")
    values = table.iloc[:, 1:]
    if not values.isin([-1, 1]).all().all():
        raise _error(root, f"{path.name}: attribute values must be -1 or 1")
    if int(lines[0]) != len(table):
        raise _error(root, f"{path.name} announces {int(lines[0])} images but lists {len(table)}")
    table.columns = ["file", *ATTRIBUTES]
    return table


def read_partition(root: Path, path: Path, raw: bytes, files: pd.Series) -> np.ndarray:
    """The split (0 train, 1 val, 2 test) of each image in ``files``' order."""
    try:
        table = pd.read_csv(BytesIO(raw), sep=r"\s+", header=None, names=["file", "split"], dtype={"file": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as ex:
        raise _error(root, f"{path.name} is not '<file> <0|1|2>' lines: {str(ex).splitlines()[0]}") from None
    if not table["split"].isin([0, 1, 2]).all():
        raise _error(root, f"{path.name}: the split of each image must be 0 (train), 1 (val) or 2 (test)")
    split = table.set_index("file")["split"].reindex(files.to_numpy())
    if split.isna().any():
        raise _error(root, f"{path.name} has no split for {split.index[split.isna().argmax()]}")
    return split.to_numpy(dtype=np.int64)


def load_images(root: Path, folder: Path, files: pd.Series, size: int) -> np.ndarray:
    """Every listed image, RGB, resized to ``size`` x ``size``: uint8 (N, 3, size, size)."""
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, name in enumerate(files):
        path = folder / name
        if not path.is_file() and (folder / (Path(name).stem + ".png")).is_file():
            path = folder / (Path(name).stem + ".png")  # the PNG release keeps the JPEG names in its lists
        try:
            with Image.open(path) as image:
                resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
        except FileNotFoundError:
            raise _error(root, f"missing image {path.relative_to(root)}") from None
        except (Image.UnidentifiedImageError, OSError) as ex:
            raise _error(root, f"cannot read image {path.relative_to(root)}: {ex}") from None
        out[i] = np.asarray(resized).transpose(2, 0, 1)
    return out


def _sound_cache(cache: Path, shape: tuple[int, ...]) -> bool:
    """Whether the decoded-image cache is whole and of ``shape``; a damaged one (a run killed while
    another wrote it, a full disk) is decoded again rather than read."""
    try:
        return read_header(cache, "dataset=celeba").shape == shape
    except ConfigError:
        return False


def cached_images(root: Path, folder: Path, files: pd.Series, size: int, key: str) -> np.ndarray:
    """:func:`load_images`, cached under the user cache folder (rebuilt if the annotations change)."""
    cache = bf.data_root("celeba", None) / f"images_{size}_{key}.npy"
    if cache.is_file() and _sound_cache(cache, (len(files), 3, size, size)):
        return np.ascontiguousarray(np.load(cache, mmap_mode="r"))
    images = load_images(root, folder, files, size)
    if len(files) >= 10000:  # small folders (tests, sub-samples) are quick to decode again
        bf.save_npy(cache, images)
    return images


@DATASETS.register("celeba")
def celeba(
    root: str | None = None, verify: bool = True, download: bool = False, image_size: int = 64
) -> MultiTaskDataset:
    """Build CelebA with all 40 attribute tasks (choose a subset with ``tasks=``)."""
    in_range("dataset", "image_size", image_size, 8, 512)
    folder = bf.data_root("celeba", root)
    if download:
        raise _error(folder, "dataset.download=true cannot fetch CelebA: it has no stable public address")
    attr_path, partition_path, image_folder = find_layout(folder)
    attr_raw = bf.read_bytes("celeba", folder, attr_path, HOW)
    partition_raw = bf.read_bytes("celeba", folder, partition_path, HOW)
    if verify:
        bf.check_md5("celeba", folder, attr_path, attr_raw, ATTR.md5, HOW)
        bf.check_md5("celeba", folder, partition_path, partition_raw, PARTITION.md5, HOW)
    table = read_attributes(folder, attr_path, attr_raw)
    split = read_partition(folder, partition_path, partition_raw, table["file"])
    if verify and len(table) != COUNT:
        raise _error(folder, f"{attr_path.name} lists {len(table)} images, not {COUNT}; set dataset.verify=false")
    for index, name in enumerate(("train", "val", "test")):
        if not (split == index).any():
            raise _error(folder, f"{partition_path.name} puts no image in the {name} split ({index})")
    key = hashlib.md5(attr_raw + partition_raw, usedforsecurity=False).hexdigest()[:12]
    images = torch.from_numpy(cached_images(folder, image_folder, table["file"], image_size, key))
    labels = {a: torch.tensor((table[a].to_numpy() > 0), dtype=torch.float32) for a in ATTRIBUTES}

    def part(index: int) -> ByteImageSplit:
        i = torch.from_numpy(np.flatnonzero(split == index))
        return ByteImageSplit(images[i], {a: y[i] for a, y in labels.items()}, MEAN, STD)

    train, val, test = part(0), part(1), part(2)
    return MultiTaskDataset(
        tasks={a: binary_task(a) for a in ATTRIBUTES},
        train=train,
        val=val,
        test=test,
        input_shape=(3, image_size, image_size),
        default_encoder="resnet18",
        info={"source": str(folder), "sizes": [len(train), len(val), len(test)]},
    )

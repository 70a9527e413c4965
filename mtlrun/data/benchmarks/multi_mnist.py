"""MultiMNIST, MultiFashion and Multi-(Fashion+MNIST), composed as Sener & Koltun (NeurIPS 2018).

"Multi-Task Learning as Multi-Objective Optimization" builds each composite from a source image I
and a partner J drawn uniformly from the same split: on a 36x36 canvas I sits at the top left
(rows/cols 0-27), J at the bottom right (rows/cols 6-33), overlapping pixels keep the maximum, and
the canvas is resized back to 28x28 with nearest-neighbour sampling. Tasks: ``left`` = I's label,
``right`` = J's label (10 classes each). One composite per source image: 60,000 from the training
file and 10,000 from the test file. Inputs are normalised with mean 0.1307 and std 0.3081, as in
the paper's code.

The original used ``scipy.misc.imresize(..., 'nearest')``, which no longer exists; PIL's nearest
resize, used here, samples the same source pixels.

Validation: a seeded ``val_fraction`` of the training composites (partners are drawn from the
whole training file first, exactly as in the recipe). Data: the four IDX files of MNIST or
Fashion-MNIST, gzipped or not; Debian's ``dataset-fashion-mnist`` package installs Fashion-MNIST
at ``/usr/share/datasets/fashion-mnist``, which ``multi_fashion`` uses when its own folder is empty.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from mtlrun.data.base import DATASETS, MultiTaskDataset
from mtlrun.data.formats import benchmark_files as bf
from mtlrun.data.formats.byte_images import ByteImageSplit
from mtlrun.data.formats.idx import IdxFormatError, parse_images, parse_labels
from mtlrun.data.tasks import classification_task
from mtlrun.errors import ConfigError
from mtlrun.lazy import lazy_module
from mtlrun.registry import in_range

Image = lazy_module("PIL.Image")  # used only to resize the canvases

SIDE, CANVAS, OFFSET = 28, 36, 6
MEAN, STD = 0.1307, 0.3081
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
COUNTS = {"train": 60000, "t10k": 10000}
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: MD5 of the decompressed IDX files (the .gz digests differ between mirrors and Debian)
MNIST_MD5 = (
    "6bbc9ace898e44ae57da46a324031adb",
    "a25bea736e30d166cdddb491f175f624",
    "2646ac647ad5339dbf082846283269ea",
    "27ae3e4e09519cfbb04c329615203637",
)
FASHION_MD5 = (
    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "9018921c3c673c538a1fc5bad174d6f9",
    "8181f5470baa50b63fa0f6fddb340f0a",
    "15d484375f8d13e6eb1aabb0c3f46965",
)


def source_files(kind: str) -> list[bf.DataFile]:
    """The four IDX files of ``kind`` ("mnist" or "fashion") with their addresses and digests."""
    url, digests = (MNIST_URL, MNIST_MD5) if kind == "mnist" else (FASHION_URL, FASHION_MD5)
    return [bf.DataFile(f"{name}.gz", url + f"{name}.gz", digest) for name, digest in zip(FILES, digests)]


def _how(kind: str) -> str:
    files = source_files(kind)
    extra = "or apt-get install dataset-fashion-mnist (Debian)" if kind == "fashion" else ""
    return bf.how_to_get(files, extra)


def source_root(dataset: str, kind: str, root: str | None) -> Path:
    """The folder holding ``kind``'s IDX files; Fashion-MNIST falls back to Debian's install path."""
    folder = bf.data_root(dataset, root)
    if (
        kind == "fashion"
        and not root
        and bf.locate(folder, [FILES[0]]) is None
        and bf.locate(DEBIAN_FASHION, [FILES[0]]) is not None
    ):
        return DEBIAN_FASHION
    return folder


def load_idx(
    dataset: str, kind: str, root: Path, verify: bool, download: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train"|"t10k": (images (n, 28, 28) uint8, labels (n,) uint8)}``, validated."""
    files = source_files(kind)
    how = _how(kind)
    if download:
        bf.fetch_missing(
            dataset, root, files, alternatives={f.name: [f.name[:-3], "raw/" + f.name] for f in files}, verify=verify
        )
    out = {}
    for split, (img_file, lbl_file) in (("train", files[:2]), ("t10k", files[2:])):
        arrays = []
        for file, parse in ((img_file, parse_images), (lbl_file, parse_labels)):
            path = bf.require(dataset, root, file, how, alternatives=["raw/" + file.name])
            data = bf.read_bytes(dataset, root, path, how)
            try:
                arrays.append(parse(data))
            except IdxFormatError as ex:
                raise bf.data_error(dataset, root, f"{path.name} is not a valid IDX file: {ex}", how) from None
            if verify:
                bf.check_md5(dataset, root, path, data, file.md5, how)
        images, labels = arrays
        name = img_file.name
        if images.shape[1:] != (SIDE, SIDE):
            raise bf.data_error(
                dataset, root, f"{name} holds {images.shape[1]}x{images.shape[2]} images, not 28x28", how
            )
        if len(images) != len(labels):
            raise bf.data_error(dataset, root, f"{name} has {len(images)} images but its labels {len(labels)}", how)
        if len(labels) == 0 or labels.max() > 9:
            raise bf.data_error(dataset, root, f"{lbl_file.name} must hold labels 0-9 for at least one image", how)
        if verify and len(labels) != COUNTS[split]:
            raise bf.data_error(
                dataset,
                root,
                f"{name} holds {len(labels)} images, not the published {COUNTS[split]}; "
                "set dataset.verify=false for a sub-sample",
                how,
            )
        out[split] = (images, labels)
    return out


@lru_cache(maxsize=1)
def nearest_index() -> np.ndarray:
    """Which canvas row/column PIL's nearest resize 36 -> 28 samples for each output row/column."""
    ramp = Image.fromarray(np.arange(CANVAS, dtype=np.uint8)[None, :].repeat(CANVAS, 0))
    return np.asarray(ramp.resize((SIDE, SIDE), Image.NEAREST))[0].astype(np.int64)


def compose(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sener & Koltun's composite of uint8 images (n, 28, 28): left top-left, right bottom-right,
    pixelwise max in the overlap, nearest-resized from 36x36 to 28x28."""
    n = left.shape[0]
    canvas = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    canvas[:, :SIDE, :SIDE] = left
    end = OFFSET + SIDE
    canvas[:, OFFSET:end, OFFSET:end] = np.maximum(canvas[:, OFFSET:end, OFFSET:end], right)
    idx = nearest_index()
    return canvas[:, idx][:, :, idx]


def composites(
    left: tuple[np.ndarray, np.ndarray], right: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One composite per left source image with a partner drawn uniformly from ``right``'s split."""
    partners = rng.integers(0, len(right[1]), size=len(left[1]))
    return compose(left[0], right[0][partners]), left[1].astype(np.int64), right[1][partners].astype(np.int64)


def _split(images: np.ndarray, left: np.ndarray, right: np.ndarray) -> ByteImageSplit:
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    return ByteImageSplit(x, {"left": torch.from_numpy(left), "right": torch.from_numpy(right)}, [MEAN], [STD])


def build_multi(
    dataset: str,
    left_src: dict[str, tuple[np.ndarray, np.ndarray]],
    right_src: dict[str, tuple[np.ndarray, np.ndarray]],
    seed: int,
    val_fraction: float,
    info: dict,
    train_limit: int = 0,
) -> MultiTaskDataset:
    """The splits: composites of the training file (less a seeded validation subset) and of the test file.

    ``train_limit`` > 0 keeps only that many training composites (quick experiments); the
    composites themselves and the validation and test splits do not change."""
    rng = np.random.default_rng(seed)
    train = _split(*composites(left_src["train"], right_src["train"], rng))
    test = _split(*composites(left_src["t10k"], right_src["t10k"], rng))
    order = torch.from_numpy(rng.permutation(len(train)))
    n_val = int(round(len(train) * val_fraction))
    kept = order[n_val:] if train_limit <= 0 else order[n_val : n_val + train_limit]
    val, train = train.subset(order[:n_val].sort().values), train.subset(kept.sort().values)
    tasks = {name: classification_task(name, 10) for name in ("left", "right")}
    for spec in tasks.values():
        spec.head_hidden = 50  # Sener & Koltun's task decoder: fc 50-50, ReLU, fc 50-10
    return MultiTaskDataset(
        tasks=tasks,
        train=train,
        val=val,
        test=test,
        input_shape=(1, SIDE, SIDE),
        default_encoder="lenet",
        info={**info, "sizes": [len(train), len(val), len(test)]},
    )


def _check(val_fraction: float, train_limit: int) -> None:
    in_range("dataset", "val_fraction", val_fraction, 0.0, 0.5)
    if train_limit < 0:
        raise ConfigError(f"dataset.train_limit={train_limit} must be >= 0 (0 = every training composite)")


@DATASETS.register("multi_mnist")
def multi_mnist(
    root: str | None = None,
    verify: bool = True,
    download: bool = False,
    seed: int = 0,
    val_fraction: float = 1 / 12,
    train_limit: int = 0,
) -> MultiTaskDataset:
    """MultiMNIST: two MNIST digits per image (left, right)."""
    _check(val_fraction, train_limit)
    folder = source_root("multi_mnist", "mnist", root)
    src = load_idx("multi_mnist", "mnist", folder, verify, download)
    return build_multi("multi_mnist", src, src, seed, val_fraction, {"source": str(folder)}, train_limit)


@DATASETS.register("multi_fashion")
def multi_fashion(
    root: str | None = None,
    verify: bool = True,
    download: bool = False,
    seed: int = 0,
    val_fraction: float = 1 / 12,
    train_limit: int = 0,
) -> MultiTaskDataset:
    """MultiFashion: two Fashion-MNIST items per image (left, right)."""
    _check(val_fraction, train_limit)
    folder = source_root("multi_fashion", "fashion", root)
    src = load_idx("multi_fashion", "fashion", folder, verify, download)
    return build_multi("multi_fashion", src, src, seed, val_fraction, {"source": str(folder)}, train_limit)


@DATASETS.register("multi_fashion_mnist")
def multi_fashion_mnist(
    root: str | None = None,
    fashion_root: str | None = None,
    verify: bool = True,
    download: bool = False,
    seed: int = 0,
    val_fraction: float = 1 / 12,
    train_limit: int = 0,
) -> MultiTaskDataset:
    """Multi-(Fashion+MNIST): an MNIST digit at the top left, a Fashion-MNIST item at the bottom right.

    ``root`` holds the MNIST files (default: multi_mnist's folder), ``fashion_root`` the
    Fashion-MNIST files (default: multi_fashion's folder, else Debian's install path).
    """
    _check(val_fraction, train_limit)
    mnist_folder = bf.data_root("multi_mnist", root)
    fashion_folder = source_root("multi_fashion", "fashion", fashion_root)
    left = load_idx("multi_fashion_mnist", "mnist", mnist_folder, verify, download)
    right = load_idx("multi_fashion_mnist", "fashion", fashion_folder, verify, download)
    info = {"source": str(mnist_folder), "fashion_source": str(fashion_folder)}
    return build_multi("multi_fashion_mnist", left, right, seed, val_fraction, info, train_limit)

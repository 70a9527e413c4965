"""Image benchmarks stored as one ``.npy`` file per example and field, read a batch at a time.

MTAN's preprocessed NYUv2 and Cityscapes (and LibMTL's copies) keep ``ROOT/<split>/<field>/<i>.npy``
with ``i = 0 .. N-1``, arrays stored height x width x channels. :class:`NpyFolderSplit` keeps only
the list of example indices; each batch memory-maps its files (``np.load(mmap_mode="r")``), stacks
them channels-first and moves them to the split's device, so a split never sits in memory whole.
It keeps :class:`~mtlrun.data.base.TensorSplit`'s contract (``batches``, ``num_batches``,
``__len__``, ``select``, ``to``, ``device``), so the trainer cannot tell the two apart.

With ``augment`` the training batches get MTAN's augmentation (``lorenmt/mtan``,
``create_dataset.py``, ``RandomScaleCrop`` and the flip in ``NYUv2.__getitem__``), also used by
LibMTL: per example a scale s from {1.0, 1.2, 1.5}, a random crop of (H/s, W/s) resized back to
(H, W) (bilinear for images and normals, nearest for labels and depth, depth divided by s), then a
horizontal flip with probability 1/2 that also negates the normals' x component. Its random draws
come from the generator that shuffles the split, so a seed fixes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlrun.data.formats.npy_header import check_alike
from mtlrun.errors import ConfigError

#: how each field is turned into a tensor and augmented
FIELD_KINDS = ("image", "label", "depth", "normal")
#: MTAN's RandomScaleCrop scales
SCALES = (1.0, 1.2, 1.5)


def data_root(name: str, root: str | None, how_to_get: str) -> Path:
    """``dataset.root``, else ``$MTLRUN_DATA/<name>``, else ``~/.cache/mtlrun/<name>``; it must exist."""
    if root:
        candidates = [("dataset.root", Path(root).expanduser())]
    elif os.environ.get("MTLRUN_DATA"):
        candidates = [("$MTLRUN_DATA", Path(os.environ["MTLRUN_DATA"]).expanduser() / name)]
    else:
        candidates = [("the default", Path.home() / ".cache" / "mtlrun" / name)]
    where, path = candidates[0]
    if not (path / "train").is_dir():
        raise ConfigError(
            f"dataset={name}: no data at {path} (from {where}; looked for {path / 'train'}); {how_to_get}, "
            f"then pass dataset.root=PATH, set $MTLRUN_DATA (holding {name}/), or unpack into ~/.cache/mtlrun/{name}"
        )
    return path.resolve()


def count_files(folder: Path) -> int:
    """Number of examples in ``folder``, checking that they are ``0.npy .. N-1.npy`` with no gap."""
    if not folder.is_dir():
        raise ConfigError(f"missing folder {folder}")
    names = {p.name for p in folder.glob("*.npy")}
    n = len(names)
    missing = [i for i in range(n) if f"{i}.npy" not in names]
    if missing:
        raise ConfigError(f"{folder} holds {n} .npy files but not {missing[0]}.npy; files must be 0.npy .. {n - 1}.npy")
    return n


def to_tensor(array: np.ndarray, kind: str) -> Tensor:
    """A stacked batch (N, H, W[, C]) as a channels-first tensor of the field's dtype."""
    if kind == "label":
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).long()
    if array.ndim == 3:  # (N, H, W) single-channel maps
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(0, 3, 1, 2).contiguous()


def scale_crop(fields: dict[str, Tensor], kinds: Mapping[str, str], generator: torch.Generator) -> None:
    """MTAN's random scale-crop, in place on one example's channels-first fields."""
    scale = SCALES[int(torch.randint(len(SCALES), (1,), generator=generator))]
    height, width = next(iter(fields.values())).shape[-2:]
    h, w = int(height / scale), int(width / scale)
    i = int(torch.randint(height - h + 1, (1,), generator=generator))
    j = int(torch.randint(width - w + 1, (1,), generator=generator))
    for key, value in fields.items():
        kind = kinds[key]
        crop = value[..., i : i + h, j : j + w]
        if kind == "label":
            resized = F.interpolate(crop[None, None].float(), size=(height, width), mode="nearest")[0, 0].long()
        elif kind in ("image", "normal"):
            resized = F.interpolate(crop[None], size=(height, width), mode="bilinear", align_corners=True)[0]
        else:
            resized = F.interpolate(crop[None], size=(height, width), mode="nearest")[0]
            if kind == "depth":
                resized = resized / scale
        fields[key] = resized


def flip(fields: dict[str, Tensor], kinds: Mapping[str, str]) -> None:
    """Horizontal flip of one example; normals' x component changes sign."""
    for key, value in fields.items():
        flipped = value.flip(-1)
        if kinds[key] == "normal":
            flipped = flipped.clone()
            flipped[0] = -flipped[0]
        fields[key] = flipped


def augment_batch(
    x: Tensor, targets: dict[str, Tensor], kinds: Mapping[str, str], generator: torch.Generator
) -> tuple[Tensor, dict[str, Tensor]]:
    """MTAN's scale-crop and flip, drawn independently for every example of the batch."""
    xs, ys = [], {t: [] for t in targets}
    all_kinds = {"x": "image", **{t: kinds[t] for t in targets}}
    for n in range(x.shape[0]):
        example = {"x": x[n], **{t: y[n] for t, y in targets.items()}}
        scale_crop(example, all_kinds, generator)
        if float(torch.rand((), generator=generator)) < 0.5:
            flip(example, all_kinds)
        xs.append(example["x"])
        for t in targets:
            ys[t].append(example[t])
    return torch.stack(xs), {t: torch.stack(v) for t, v in ys.items()}


@dataclass
class NpyFolderSplit:
    """One split of a ``ROOT/<split>/<field>/<i>.npy`` benchmark, loaded one batch at a time.

    ``folders`` maps ``"x"`` and each task to its folder under ``root``; ``kinds`` gives each task's
    field kind (label, depth, normal); ``indices`` are the example numbers this split uses.
    """

    root: Path
    indices: Sequence[int]
    folders: dict[str, str]
    kinds: dict[str, str]
    augment: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def tasks(self) -> list[str]:
        return [t for t in self.folders if t != "x"]

    def __len__(self) -> int:
        return len(self.indices)

    def _load(self, key: str, chosen: Sequence[int]) -> Tensor:
        folder = self.root / self.folders[key]
        arrays = np.stack([np.load(folder / f"{i}.npy", mmap_mode="r") for i in chosen])
        return to_tensor(arrays, "image" if key == "x" else self.kinds[key]).to(self.device)

    def load(self, positions: Sequence[int]) -> tuple[Tensor, dict[str, Tensor]]:
        """The examples at ``positions`` of this split, stacked and on the split's device."""
        chosen = [self.indices[p] for p in positions]
        return self._load("x", chosen), {t: self._load(t, chosen) for t in self.tasks}

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        x, targets = self.load([index])
        return x[0], {t: y[0] for t, y in targets.items()}

    def select(self, tasks: list[str]) -> NpyFolderSplit:
        return replace(self, folders={"x": self.folders["x"], **{t: self.folders[t] for t in tasks}})

    def to(self, device: torch.device) -> NpyFolderSplit:
        return replace(self, device=torch.device(device))

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """Yield ``(x, {task: y})`` mini-batches; order and augmentation come from ``generator``."""
        n = len(self)
        order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
        for start in range(0, n, batch_size):
            x, targets = self.load(order[start : start + batch_size])
            if self.augment and shuffle:
                x, targets = augment_batch(x, targets, self.kinds, generator or torch.default_generator)
            yield x, targets

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)


def field_shape(folder: Path, n: int) -> tuple[int, ...]:
    """The shape of every example ``0.npy .. n-1.npy`` of one field, from the headers alone.

    Every file is checked when the dataset is opened (size against header, numbers, one shape),
    so a damaged later file is one line naming it instead of a numpy error at its first batch.
    """
    return check_alike([folder / f"{i}.npy" for i in range(n)], "dataset.root").shape


def check_layout(
    root: Path, split: str, folders: Mapping[str, str], expected: int | None, size: tuple[int, int] | None
) -> tuple[int, tuple[int, int]]:
    """Count the examples of ``root/split`` and check every field folder against the image folder;
    every file's header is checked against its size (:mod:`mtlrun.data.formats.npy_header`).

    ``expected`` (the published count) and ``size`` (the published height, width) are checked
    when given (``dataset.verify=true``). Returns the count and the images' (height, width).
    """
    base = root / split
    n = count_files(base / folders["x"])
    if expected is not None and n != expected:
        raise ConfigError(
            f"{base / folders['x']} holds {n} examples, the published {split} split has {expected}; "
            "pass dataset.verify=false to use a partial or custom folder"
        )
    if n == 0:
        raise ConfigError(f"{base / folders['x']} holds no .npy files")
    image = field_shape(base / folders["x"], n)
    if len(image) != 3:
        raise ConfigError(f"{base / folders['x'] / '0.npy'} has shape {image}; expected (height, width, channels)")
    hw = (int(image[0]), int(image[1]))
    if size is not None and hw != tuple(size):
        raise ConfigError(
            f"{base / folders['x'] / '0.npy'} is {hw[0]}x{hw[1]}, the published data is {size[0]}x{size[1]}; "
            "pass dataset.verify=false to use other sizes"
        )
    for key, folder in folders.items():
        if key == "x":
            continue
        m = count_files(base / folder)
        if m != n:
            raise ConfigError(f"{base / folder} holds {m} examples but {base / folders['x']} holds {n}")
        shape = field_shape(base / folder, m)
        if tuple(shape[:2]) != hw:
            raise ConfigError(f"{base / folder / '0.npy'} has shape {shape}; expected {hw[0]}x{hw[1]} like the images")
    return n, hw


def benchmark_splits(
    root: Path,
    folders: dict[str, str],
    kinds: dict[str, str],
    *,
    published: Mapping[str, int] | None,
    size: tuple[int, int] | None,
    augment: bool,
    val_size: int,
    seed: int,
) -> tuple[NpyFolderSplit, NpyFolderSplit, NpyFolderSplit, tuple[int, int]]:
    """Train, validation and test splits of a benchmark with ``train/`` and ``val/`` folders.

    The published ``val/`` folder is the test split, as in MTAN, LibMTL, Nash-MTL and FAMO, whose
    tables report it. With ``val_size`` 0 it is also the validation split that picks the best
    epoch (the papers' practice); with ``val_size`` > 0 that many training examples, drawn with
    ``seed``, are held out for validation instead and the test split stays unseen.
    """
    n_train, hw = check_layout(root, "train", folders, published and published["train"], size)
    n_test, hw_test = check_layout(root, "val", folders, published and published["val"], size)
    if hw_test != hw:
        raise ConfigError(f"{root / 'val'} holds {hw_test[0]}x{hw_test[1]} images but {root / 'train'} {hw[0]}x{hw[1]}")
    if not 0 <= val_size < n_train:
        raise ConfigError(f"dataset.val_size={val_size} must lie in [0, {n_train - 1}] (training examples: {n_train})")
    test = NpyFolderSplit(root / "val", list(range(n_test)), folders, kinds)
    if val_size == 0:
        return NpyFolderSplit(root / "train", list(range(n_train)), folders, kinds, augment), test, test, hw
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed)).tolist()
    train = NpyFolderSplit(root / "train", sorted(order[val_size:]), folders, kinds, augment)
    val = NpyFolderSplit(root / "train", sorted(order[:val_size]), folders, kinds)
    return train, val, test, hw

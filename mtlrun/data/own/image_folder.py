"""``dataset=image_folder``: a folder of images plus a labels table, one row per image.

The labels table (CSV, TSV, Parquet, default ``ROOT/labels.csv``) names each image in
``image_column`` (a path relative to ``root``) and holds one column per task, declared in
``tasks`` exactly like ``dataset=table``. Images are read with pillow, converted to ``mode``
(RGB or L), resized to ``size`` x ``size`` and held in memory as uint8; each batch is converted
to float on the fly (x / 255, then standardised per channel with the train mean and std when
``normalize`` is true), which keeps memory at a quarter of float storage.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mtlrun.data.base import DATASETS, MultiTaskDataset, TensorSplit
from mtlrun.data.own.table import read_table, resolve_path
from mtlrun.errors import ConfigError, choices_error

if TYPE_CHECKING:
    import pandas as pd

MODES = {"RGB": 3, "L": 1}


class ImageSplit(TensorSplit):
    """A split whose images are stored as uint8 (N, C, H, W) and become float per batch."""

    def __init__(self, x: Tensor, targets: dict[str, Tensor], mean: Tensor, std: Tensor) -> None:
        super().__init__(x, targets)
        self.mean, self.std = mean.to(x.device), std.to(x.device)

    def as_float(self, x: Tensor) -> Tensor:
        return (x.float() / 255.0 - self.mean) / self.std

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = super().__getitem__(index)
        return self.as_float(x.unsqueeze(0))[0], y

    def select(self, tasks: list[str]) -> ImageSplit:
        return ImageSplit(self.x, {t: self.targets[t] for t in tasks}, self.mean, self.std)

    def to(self, device: torch.device) -> ImageSplit:
        return ImageSplit(self.x.to(device), {t: y.to(device) for t, y in self.targets.items()}, self.mean, self.std)

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        for x, y in super().batches(batch_size, shuffle=shuffle, generator=generator):
            yield self.as_float(x), y


def load_image(path: Path, mode: str, size: int, row: int) -> np.ndarray:
    """One image as uint8 (H, W, C); one-line error naming the file."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ConfigError(f"dataset.root: image not found: {path} (row {row} of the labels table)")
    try:
        with Image.open(path) as image:
            image.draft(mode, (size, size))  # JPEG: decode at reduced scale when possible
            image = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as ex:
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise ConfigError(f"cannot read image {path}: {first}") from None
    return array[:, :, None] if array.ndim == 2 else array


def load_images(root: Path, files: pd.Series, mode: str, size: int, rows: np.ndarray) -> Tensor:
    """uint8 (N, C, size, size) for the image paths ``files`` (relative to ``root``).

    Decoding runs in a few threads (pillow releases the GIL while decoding); each image lands at
    its own index, so the result does not depend on the thread count.
    """
    out = np.empty((len(files), size, size, MODES[mode]), dtype=np.uint8)

    def load(i: int, name: Any, row: int) -> None:
        out[i] = load_image(root / str(name), mode, size, row)

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for job in [pool.submit(load, i, name, int(row)) for i, (name, row) in enumerate(zip(files, rows))]:
            job.result()  # re-raises the first unreadable image's ConfigError
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


@DATASETS.register("image_folder")
def image_folder(
    root: str | None = None,
    tasks: dict[str, Any] | None = None,
    labels: str | None = None,
    image_column: str = "file",
    size: int = 32,
    mode: str = "RGB",
    normalize: bool = True,
    split_column: str | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    stratify: str | None = None,
    seed: int = 0,
) -> MultiTaskDataset:
    """Build a dataset from a folder of images and a labels table."""
    from mtlrun.data.formats.columns import (
        check_fractions,
        check_not_empty,
        encode_tasks,
        fingerprint,
        parse_tasks,
        require_columns,
        split_by_column,
        split_by_fractions,
        strata_for,
    )

    if root is None:
        raise ConfigError("dataset.root is required: the folder holding the images")
    folder = resolve_path(root, "dataset.root")
    if not folder.is_dir():
        raise ConfigError(f"dataset.root: folder not found: {folder}")
    if mode not in MODES:
        raise choices_error("dataset.mode", mode, list(MODES))
    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"dataset.size={size} must be a positive integer (images become size x size)")
    decls = parse_tasks(tasks)
    table_path = resolve_path(labels, "dataset.labels") if labels is not None else folder / "labels.csv"
    frame = read_table(table_path, "dataset.labels")
    source = table_path.name
    require_columns(frame, [image_column], "dataset.image_column", source)
    frame = frame.assign(_row=np.arange(len(frame)) + 1)
    column = split_column if split_column is not None else ("split" if "split" in frame.columns else None)
    if column is not None:
        require_columns(frame, [column], "dataset.split_column", source)
        parts = split_by_column(frame, column, source)
        check_not_empty(parts, f"column '{column}' of {source}")
    else:
        check_fractions(val_fraction, test_fraction)
        rows = split_by_fractions(len(frame), val_fraction, test_fraction, seed, strata_for(frame, decls, stratify))
        parts = [frame.iloc[r].reset_index(drop=True) for r in rows]
        check_not_empty(parts, f"{len(frame)} rows of {source}, val_fraction={val_fraction}")
    specs, targets, task_info, missing = encode_tasks(decls, parts, source)
    images = [load_images(folder, p[image_column], mode, size, p["_row"].to_numpy()) for p in parts]
    channels = MODES[mode]
    if normalize:
        pixels = images[0].transpose(0, 1).reshape(channels, -1).double() / 255.0
        mean, std = pixels.mean(1).float(), pixels.std(1).float().clamp(min=1e-6)
    else:
        mean, std = torch.zeros(channels), torch.ones(channels)
    mean, std = mean.view(1, channels, 1, 1), std.view(1, channels, 1, 1)
    splits = [ImageSplit(x, y, mean, std) for x, y in zip(images, targets)]
    return MultiTaskDataset(
        tasks=specs,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_shape=(channels, size, size),
        default_encoder="cnn",
        info={
            "source": str(folder),
            "labels": source,
            "sizes": [len(s) for s in splits],
            "mean": mean.flatten().tolist(),
            "std": std.flatten().tolist(),
            "tasks": task_info,
            "fingerprint": fingerprint(splits),
        },
        has_missing_labels=missing,
    )

"""An encoded table kept as memory-mapped ``.npy`` files, for logs of tens of millions of rows.

``dataset.cache=FOLDER`` (tables and the click-log benchmarks) writes the encoded splits in
``dataset=npy_folder``'s layout, ``FOLDER/<key>/{train,val,test}/{x,<target>}.npy``, with the
inputs written a block of rows at a time (:data:`BLOCK` rows), so the encoded matrix is never
held in memory whole, and serves them as memory maps (:class:`~mtlrun.data.loader.ArraySplit`):
``loader.mode=auto`` reads them into memory where they fit and streams them through a
``DataLoader`` where they do not. ``<key>`` hashes the source files (path, size, modification
time) and every option that shapes the encoding, so a later run with the same files and options
opens the arrays without reading the log again, and a changed file or option writes a new entry.
``meta.json`` holds what the arrays do not: each task's kind, size and standardisation, the
encoder's context, the dataset's info. Everything is written to a temporary folder and renamed
into place, so an interrupted write never looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlrun.data.base import MultiTaskDataset, TaskSpec
from mtlrun.errors import ConfigError

SPLITS = ("train", "val", "test")
#: rows encoded and written per block
BLOCK = 1 << 16
META = "meta.json"
VERSION = 1


def cache_key(files: Sequence[Path], options: dict[str, Any]) -> str:
    """A short hash of the source files' identity (path, size, mtime) and the encoding options."""
    digest = hashlib.blake2b(digest_size=10)
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    digest.update(json.dumps({"version": VERSION, **options}, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def entry(cache: str, files: Sequence[Path], options: dict[str, Any]) -> Path:
    """The folder of this encoding under ``dataset.cache`` (relative to the launch folder)."""
    if not isinstance(cache, str) or not cache:
        raise ConfigError(f"dataset.cache={cache!r} must be a folder path")
    try:
        from hydra.utils import to_absolute_path

        base = Path(to_absolute_path(str(Path(cache).expanduser())))
    except ValueError:  # outside a Hydra run
        base = Path(cache).expanduser().resolve()
    return base / cache_key(files, options)


def _npy_name(target: str) -> str:
    """File name of a target array; side entries (``@group``) keep a plain file name."""
    return ("side_" + target[1:] if target.startswith("@") else target) + ".npy"


def store(
    folder: Path,
    parts: Sequence[Any],
    transform: Callable[[Any], np.ndarray],
    width: int,
    targets: Sequence[dict[str, torch.Tensor]],
    meta: dict[str, Any],
) -> None:
    """Write each split's inputs (``transform`` of blocks of rows of its frame) and targets, then ``meta``."""
    tmp = folder.with_name(folder.name + f".part-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        digest = hashlib.blake2b(digest_size=10)  # the same bytes as :func:`columns.fingerprint` hashes
        for split, frame, ys in zip(SPLITS, parts, targets):
            (tmp / split).mkdir(parents=True)
            n = len(frame)
            x = np.lib.format.open_memmap(tmp / split / "x.npy", mode="w+", dtype=np.float32, shape=(n, width))
            digest.update(str((n, width)).encode())
            for start in range(0, n, BLOCK):
                block = transform(frame.iloc[start : start + BLOCK])
                x[start : start + len(block)] = block
                digest.update(np.ascontiguousarray(block).tobytes())
            x.flush()
            del x
            for name in sorted(ys):
                array = ys[name].numpy()
                np.save(tmp / split / _npy_name(name), array)
                digest.update(str(tuple(array.shape)).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
        meta = {**meta, "info": {**meta["info"], "fingerprint": digest.hexdigest()}}
        (tmp / META).write_text(json.dumps(meta, indent=1, default=str))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load(folder: Path, specs: Callable[[dict[str, Any]], dict[str, TaskSpec]]) -> MultiTaskDataset | None:
    """The cached dataset in ``folder``, or None when there is none; ``specs(meta)`` rebuilds the TaskSpecs."""
    from mtlrun.data.loader import ArraySplit, LoaderSplit, load_npy

    if not (folder / META).is_file():
        return None
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, json.JSONDecodeError) as ex:
        raise ConfigError(
            f"dataset.cache: cannot read {folder / META} ({ex}); delete the folder to rebuild it"
        ) from None
    dtypes = {name: getattr(torch, dtype) for name, dtype in meta["dtypes"].items()}
    splits = []
    for split in SPLITS:
        try:
            x = load_npy(folder / split / "x.npy")
            ys = {name: load_npy(folder / split / _npy_name(name)) for name in dtypes}
        except (OSError, ValueError) as ex:
            raise ConfigError(
                f"dataset.cache: {folder / split} is damaged ({ex}); delete {folder} to rebuild it"
            ) from None
        splits.append(LoaderSplit(ArraySplit(x, ys, dtypes)))
    return MultiTaskDataset(
        tasks=specs(meta),
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_shape=tuple(meta["input_shape"]),
        default_encoder=meta["default_encoder"],
        info={**meta["info"], "cache": str(folder)},
        has_missing_labels=bool(meta["has_missing_labels"]),
        encoder_context=meta["encoder_context"],
    )

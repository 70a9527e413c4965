"""``dataset=npy_folder``: NumPy arrays on disk, memory-mapped, so the data need not fit in memory.

Layout (one folder per split, one ``.npy`` file per array, row i of every file is sample i)::

    ROOT/train/x.npy          inputs (N, ...): features (N, D) or images (N, C, H, W)
    ROOT/train/<task>.npy     one target array (N,) per declared task
    ROOT/val/...   ROOT/test/...   the same files

Tasks are declared like the table dataset's: ``dataset.tasks={NAME: {kind: KIND}}`` with ``kind``
one of classification (integer labels 0..C-1; C from the train split), binary (0/1) or regression
(standardised on the train split, metrics in the original units), and optionally ``file`` (default
``NAME``, i.e. ``NAME.npy``) and ``primary`` (the metric that picks the best epoch). Every array is
opened with ``numpy.load(mmap_mode="r")``: only the rows of each batch are read. The ``loader:``
section decides whether the splits are read into memory (the fast path, ``auto`` where they fit)
or streamed through a ``DataLoader``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlrun.data.base import DATASETS, MultiTaskDataset, TaskSpec
from mtlrun.data.formats.npy_header import read_header, require_numeric
from mtlrun.data.loader import ArraySplit, LoaderSplit, load_npy
from mtlrun.data.tasks import binary_task, classification_task, regression_task
from mtlrun.errors import ConfigError, choices_error

SPLITS = ("train", "val", "test")
KINDS = ("classification", "binary", "regression")
TASK_KEYS = ("kind", "file", "primary")


def _absolute(root: str) -> Path:
    """``root`` relative to the folder mtlrun was launched from (Hydra may change the working folder)."""
    try:
        from hydra.utils import to_absolute_path

        return Path(to_absolute_path(str(Path(root).expanduser())))
    except ValueError:  # outside a Hydra run
        return Path(root).expanduser().resolve()


def _open(path: Path) -> np.ndarray:
    """A memory map of ``path`` after its header is checked against its size and found numeric
    (:mod:`mtlrun.data.formats.npy_header`): a damaged file is refused here, naming it, not at a batch."""
    if not path.is_file():
        raise ConfigError(f"dataset=npy_folder: missing file {path}")
    require_numeric(read_header(path, "dataset=npy_folder"), "dataset=npy_folder")
    try:
        return load_npy(path)
    except (ValueError, OSError) as ex:
        raise ConfigError(f"dataset=npy_folder: cannot read {path} as a .npy array ({ex})") from None


def _declarations(tasks: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(tasks, Mapping) or not tasks:
        raise ConfigError("dataset.tasks must map task names to declarations, e.g. dataset.tasks={y: {kind: binary}}")
    out = {}
    for name, decl in tasks.items():
        decl = dict(decl or {})
        for key in decl:
            if key not in TASK_KEYS:
                raise choices_error(f"dataset.tasks.{name}.{key} (key)", key, TASK_KEYS)
        kind = decl.get("kind")
        if kind not in KINDS:
            raise choices_error(f"dataset.tasks.{name}.kind", kind, KINDS)
        out[str(name)] = decl
    return out


def _task_spec(name: str, decl: dict[str, Any], train: np.ndarray, path: Path) -> TaskSpec:
    """The TaskSpec of one declared task, sized and scaled from its train labels (a 1-D array)."""
    labels = np.asarray(train)
    kind = decl["kind"]
    if kind == "binary" and not set(np.unique(labels).tolist()) <= {0, 1}:
        raise ConfigError(f"dataset.tasks.{name}: {path} must hold 0/1 labels for kind=binary")
    if kind == "classification" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
        raise ConfigError(f"dataset.tasks.{name}: {path} must hold integer class labels 0..C-1 for kind={kind}")
    if kind == "classification":
        if labels.min() < 0:
            raise ConfigError(f"dataset.tasks.{name}: {path} has negative class labels; use 0..C-1")
        classes = int(labels.max()) + 1
        if classes < 2:
            raise ConfigError(f"dataset.tasks.{name}: {path} has a single class; classification needs >= 2")
        spec = classification_task(name, classes)
    elif kind == "binary":
        spec = binary_task(name)
    else:
        if not np.issubdtype(labels.dtype, np.number) or not np.all(np.isfinite(labels)):
            raise ConfigError(f"dataset.tasks.{name}: {path} must hold finite numbers for kind=regression")
        scale = float(labels.std())
        spec = regression_task(name, shift=float(labels.mean()), scale=scale if scale > 0 else 1.0)
    primary = decl.get("primary")
    if primary is not None:
        if primary not in spec.metrics:
            raise choices_error(f"dataset.tasks.{name}.primary", primary, list(spec.metrics))
        spec.primary = primary
    return spec


def _check_held_out(name: str, spec: TaskSpec, labels: np.ndarray, path: Path) -> None:
    """Validation and test labels the train split's task can score: a class the head has no output
    for, a binary label other than 0/1 or a non-finite target would fail (or mislead) at evaluation."""
    values = np.asarray(labels)
    if spec.kind == "regression":
        if not np.all(np.isfinite(values)):
            raise ConfigError(f"dataset.tasks.{name}: {path} must hold finite numbers for kind=regression")
        return
    if not np.all(np.isfinite(values) & (values == np.round(values))):
        raise ConfigError(f"dataset.tasks.{name}: {path} must hold integer labels for kind={spec.kind}")
    if spec.kind == "binary":
        if not set(np.unique(values).tolist()) <= {0, 1}:
            raise ConfigError(f"dataset.tasks.{name}: {path} must hold 0/1 labels for kind=binary")
        return
    if values.size and (values.min() < 0 or values.max() >= spec.out_dim):
        bad = int(values.max()) if values.max() >= spec.out_dim else int(values.min())
        raise ConfigError(
            f"dataset.tasks.{name}: {path} has class {bad}, but the train split's labels are 0..{spec.out_dim - 1}"
        )


@DATASETS.register("npy_folder")
def npy_folder(root: str, tasks: Any = None) -> MultiTaskDataset:
    """Memory-mapped ``ROOT/{train,val,test}/{x,<task>}.npy`` arrays with declared tasks.

    ``tasks`` is typed ``Any`` so that a whole mapping given on the command line replaces the default.
    """
    if root in ("???", "", None):
        raise ConfigError("dataset.root is required for dataset=npy_folder (a folder with train/, val/, test/)")
    base = _absolute(root)
    if not base.is_dir():
        raise ConfigError(f"dataset.root={root}: no such folder ({base})")
    decls = _declarations(tasks)
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        if not (base / split).is_dir():
            raise ConfigError(f"dataset=npy_folder: missing split folder {base / split}")
        x = _open(base / split / "x.npy")
        if x.ndim < 2 or len(x) == 0:
            raise ConfigError(f"dataset=npy_folder: {base / split / 'x.npy'} must have shape (N, ...) with N >= 1")
        arrays[split] = {"x": x}
        for name, decl in decls.items():
            path = base / split / f"{decl.get('file', name)}.npy"
            y = _open(path)
            if y.shape != (len(x),):
                raise ConfigError(f"dataset=npy_folder: {path} has shape {y.shape}; expected ({len(x)},) like x.npy")
            arrays[split][name] = y
    train_x = arrays["train"]["x"]
    for split in SPLITS[1:]:
        if arrays[split]["x"].shape[1:] != train_x.shape[1:]:
            raise ConfigError(
                f"dataset=npy_folder: {base / split / 'x.npy'} has examples of shape {arrays[split]['x'].shape[1:]}, "
                f"train has {train_x.shape[1:]}"
            )
    specs = {
        name: _task_spec(name, decl, arrays["train"][name], base / "train" / f"{decl.get('file', name)}.npy")
        for name, decl in decls.items()
    }
    for split in SPLITS[1:]:
        for name, decl in decls.items():
            _check_held_out(name, specs[name], arrays[split][name], base / split / f"{decl.get('file', name)}.npy")
    dtypes = {name: torch.int64 if spec.kind == "classification" else torch.float32 for name, spec in specs.items()}
    splits = [LoaderSplit(ArraySplit(arrays[s]["x"], {n: arrays[s][n] for n in decls}, dtypes)) for s in SPLITS]
    input_shape = tuple(int(d) for d in train_x.shape[1:])
    return MultiTaskDataset(
        tasks=specs,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_shape=input_shape,
        default_encoder="cnn" if len(input_shape) == 3 else "mlp",
        info={"root": str(base), "sizes": [len(s) for s in splits]},
    )

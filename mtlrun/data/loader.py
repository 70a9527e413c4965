"""Data larger than memory: a ``DataLoader`` path beside the in-memory fast path.

Both paths keep the batch contract of :class:`~mtlrun.data.base.TensorSplit`
(``batches(batch_size, shuffle=, generator=)``, ``num_batches``, ``len``, ``select``, ``to``) and
draw the same batches: the order is a ``torch.randperm`` from the caller's generator, cut into
consecutive chunks, in the main process. The in-memory path slices tensors with those chunks; the
``DataLoader`` path hands each chunk to a worker, which reads exactly those rows (a whole batch per
item, not one item at a time), so the two give identical losses on the same seed.

- :class:`ArraySplit` is a map-style ``torch.utils.data.Dataset`` over numpy arrays, typically
  ``numpy.load(path, mmap_mode="r")`` memory maps that stay on disk: a batch reads its rows only.
- :class:`LoaderSplit` serves any such indexable split through a ``DataLoader`` (workers, pinned
  memory, persistent workers, prefetching) and moves each batch to the run's device.
- :func:`place_splits` applies the run's ``loader:`` settings: ``memory`` loads everything into
  tensors, ``dataloader`` streams, ``auto`` keeps the fast path wherever the data fits (half of the
  available host memory, and of the free GPU memory when training on a GPU).

Both paths draw the training order in the main process with ``randperm`` from the generator the
trainer passes (its seeded shuffling generator, checkpointed with the run), so the two paths see
the same batches and a worker never consumes a random stream. :func:`epoch_generator` gives an
order that depends on ``(seed, epoch)`` only, for callers that need one without a saved state.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from mtlrun.data.base import SIDE_PREFIX, MultiTaskDataset, TensorSplit


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed that depends only on ``(seed, epoch)`` (NumPy's ``SeedSequence``)."""
    state = np.random.SeedSequence([seed % 2**64, epoch]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffling generator of epoch ``epoch``: the same ``(seed, epoch)`` always gives the same order."""
    return torch.Generator().manual_seed(epoch_seed(seed, epoch))


def _numpy_rows(array: np.ndarray, index: Any, dtype: np.dtype) -> np.ndarray:
    """``array[index]`` as a fresh in-memory array; index arrays are read in file order for locality."""
    if isinstance(index, Tensor):
        index = index.numpy()
    if isinstance(index, np.ndarray) and index.ndim == 1 and index.size > 1:
        order = np.argsort(index, kind="stable")
        rows = np.asarray(array[index[order]])
        out = np.empty_like(rows, dtype=dtype)
        out[order] = rows
        return out
    return np.array(array[index], dtype=dtype)


class ArraySplit(Dataset):
    """One split as numpy arrays ``x`` (N, ...) and one target array per task; nothing is read until indexed.

    ``target_dtypes`` gives each task's tensor dtype (``torch.int64`` for class labels, else
    ``torch.float32``); inputs become ``float32``. An item is a whole batch: ``split[index]`` with an
    index tensor, array or slice returns ``(x, {task: y})`` tensors of those rows. Memory maps are
    reopened from their files in worker processes instead of being copied into them.
    """

    def __init__(self, x: np.ndarray, targets: Mapping[str, np.ndarray], target_dtypes: Mapping[str, torch.dtype]):
        self.x = x
        self.targets = dict(targets)
        self.target_dtypes = {t: target_dtypes[t] for t in self.targets}
        for task, y in self.targets.items():
            if len(y) != len(x):
                raise ValueError(f"target {task!r} has {len(y)} rows but the inputs have {len(x)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: Any) -> tuple[Tensor, dict[str, Tensor]]:
        x = torch.from_numpy(_numpy_rows(self.x, index, np.float32))
        ys = {}
        for task, y in self.targets.items():
            dtype = self.target_dtypes[task]
            ys[task] = torch.from_numpy(_numpy_rows(y, index, np.int64 if dtype == torch.int64 else np.float32))
        return x, ys

    def select(self, tasks: list[str]) -> ArraySplit:
        side = {k: y for k, y in self.targets.items() if k.startswith(SIDE_PREFIX)}
        return ArraySplit(self.x, {**{t: self.targets[t] for t in tasks}, **side}, self.target_dtypes)

    @property
    def nbytes(self) -> int:
        """Bytes the split takes once loaded as tensors."""
        n = len(self)
        size = n * int(np.prod(self.x.shape[1:], dtype=np.int64)) * 4
        return size + sum(n * (8 if d == torch.int64 else 4) for d in self.target_dtypes.values())

    def to_tensors(self) -> TensorSplit:
        """The whole split read into memory (the fast path)."""
        x, targets = self[slice(None)]
        return TensorSplit(x, targets)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["x"] = _picklable(self.x)
        state["targets"] = {t: _picklable(y) for t, y in self.targets.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["x"] = _unpickled(state["x"])
        state["targets"] = {t: _unpickled(y) for t, y in state["targets"].items()}
        self.__dict__.update(state)


def _picklable(array: np.ndarray) -> Any:
    """A whole-file ``.npy`` memory map travels as its path (pickling a memmap would copy it)."""
    if isinstance(array, np.memmap) and getattr(array, "filename", None) and str(array.filename).endswith(".npy"):
        return ("npy", str(array.filename), array.shape)
    return array


def _unpickled(value: Any) -> np.ndarray:
    if isinstance(value, tuple) and len(value) == 3 and value[0] == "npy":
        array = np.load(value[1], mmap_mode="r")
        if array.shape != tuple(value[2]):
            raise RuntimeError(f"{value[1]} changed shape while training")
        return array
    return value


def load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file as a read-only memory map (never loaded whole)."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


@dataclass(frozen=True)
class LoaderOptions:
    """``DataLoader`` settings of the ``loader:`` config section (see ``LoaderConf``)."""

    num_workers: int = 0
    pin_memory: bool = True
    persistent_workers: bool = True
    prefetch_factor: int = 2


class _ChunkSampler(Sampler):
    """Yields the index chunks of the current pass; set before each pass, read in the main process."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


class LoaderSplit:
    """A split served by a ``DataLoader``: the same batch contract and batches as :class:`TensorSplit`.

    ``source`` is any map-style split whose item is a whole batch (an :class:`ArraySplit`, or a
    :class:`TensorSplit`, whose ``__getitem__`` takes index tensors). One ``DataLoader`` per kind of
    pass (shuffled or in order) is kept, so persistent workers live across epochs; starting a new
    pass of a kind ends the previous pass of that kind (advancing the old one raises).
    """

    def __init__(self, source: Any, options: LoaderOptions | None = None, device: torch.device | str = "cpu") -> None:
        self.source = source
        self.options = options or LoaderOptions()
        self.device = torch.device(device)
        self._loaders: dict[bool, tuple[DataLoader, _ChunkSampler]] = {}
        self._passes = itertools.count()
        self._current: dict[bool, int] = {}

    def __len__(self) -> int:
        return len(self.source)

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def select(self, tasks: list[str]) -> LoaderSplit:
        return LoaderSplit(self.source.select(tasks), self.options, self.device)

    def to(self, device: torch.device) -> LoaderSplit:
        return LoaderSplit(self.source, self.options, device)

    def with_options(self, options: LoaderOptions) -> LoaderSplit:
        return LoaderSplit(self.source, options, self.device)

    @property
    def targets(self) -> dict[str, Any]:
        return self.source.targets

    @property
    def pin(self) -> bool:
        return self.options.pin_memory and self.device.type == "cuda"

    def _loader(self, shuffle: bool) -> tuple[DataLoader, _ChunkSampler]:
        if shuffle not in self._loaders:
            sampler = _ChunkSampler()
            workers = self.options.num_workers
            extra = (
                {"persistent_workers": self.options.persistent_workers, "prefetch_factor": self.options.prefetch_factor}
                if workers > 0
                else {}
            )
            loader = DataLoader(
                self.source,
                batch_size=None,  # each item already is a batch
                sampler=sampler,
                num_workers=workers,
                pin_memory=self.pin,
                # the loader's own seed draws must not consume the global generator (dropout, init)
                generator=torch.Generator().manual_seed(0),
                **extra,
            )
            self._loaders[shuffle] = (loader, sampler)
        return self._loaders[shuffle]

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """Yield ``(x, {task: y})`` on the split's device, in the order :class:`TensorSplit` would."""
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator)
            chunks: list[Any] = [order[s : s + batch_size] for s in range(0, n, batch_size)]
        else:
            chunks = [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        return self._pass(shuffle, chunks)

    def _pass(self, shuffle: bool, chunks: list[Any]) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        loader, sampler = self._loader(shuffle)
        token = next(self._passes)
        self._current[shuffle] = token
        sampler.chunks = chunks
        blocking = not self.pin
        for x, targets in loader:
            if self._current[shuffle] != token:
                raise RuntimeError("a newer pass over this split started; an older batch iterator cannot continue")
            yield (
                x.to(self.device, non_blocking=not blocking),
                {t: y.to(self.device, non_blocking=not blocking) for t, y in targets.items()},
            )


def split_nbytes(split: Any) -> int:
    """Bytes a split takes in memory as tensors (0 for splits already held as tensors)."""
    if isinstance(split, LoaderSplit) and isinstance(split.source, ArraySplit):
        return split.source.nbytes
    inner = getattr(split, "splits", None)  # a multi-input split: one split per task
    if isinstance(inner, Mapping):
        return sum(split_nbytes(s) for s in inner.values())
    return 0


def available_memory(device: torch.device) -> int | None:
    """Free bytes where the fast path would put the data: host RAM, and the GPU's when on CUDA."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        free = None
    if device.type == "cuda" and torch.cuda.is_available():
        gpu_free, _ = torch.cuda.mem_get_info(device)
        free = gpu_free if free is None else min(free, gpu_free)
    return free


def _convert(split: Any, mode: str, options: LoaderOptions) -> Any:
    inner = getattr(split, "splits", None)
    if isinstance(inner, Mapping):  # multi-input: each task's split on its own
        return split.map(lambda s: _convert(s, mode, options))
    if mode == "memory":
        return split.source.to_tensors() if isinstance(split, LoaderSplit) else split
    if isinstance(split, LoaderSplit):
        return split.with_options(options)
    return LoaderSplit(split, options)


def choose_mode(data: MultiTaskDataset, mode: str, device: torch.device) -> str:
    """``memory`` or ``dataloader`` for ``data``; ``auto`` keeps the fast path where the data fits."""
    if mode != "auto":
        return mode
    needed = sum(split_nbytes(s) for s in (data.train, data.val, data.test))
    if needed == 0:
        return "memory"  # already in memory
    free = available_memory(device)
    return "memory" if free is None or needed <= free // 2 else "dataloader"


def place_splits(data: MultiTaskDataset, mode: str, options: LoaderOptions, device: torch.device) -> str:
    """Put ``data``'s splits on the path ``mode`` asks for (in place); return the path taken."""
    chosen = choose_mode(data, mode, device)
    data.train, data.val, data.test = (_convert(s, chosen, options) for s in (data.train, data.val, data.test))
    return chosen


def loader_options(conf: Mapping[str, Any] | None) -> tuple[str, LoaderOptions]:
    """``(mode, options)`` from the run's ``loader:`` section (validated by ``mtlrun.config.schema.validate``)."""
    conf = dict(conf or {})
    mode = str(conf.pop("mode", "auto"))
    fields = {k: v for k, v in conf.items() if k in LoaderOptions.__dataclass_fields__}
    return mode, replace(LoaderOptions(), **fields)

"""The header of a ``.npy`` file, checked against the file's size, without reading the array.

A memory-mapped dataset reads an example's bytes only when a batch needs them, so a file that is
cut short, or holds an array of another shape or type than its neighbours, used to surface as a
bare numpy error (``mmap length is greater than file size``) at the first batch that touched it,
naming no file. Reading every file's header when the dataset is opened costs one small read per
file and finds each of these up front, in one line naming the file.

A ``.npy`` file is a magic string, a version, a header (a Python literal: ``descr``, ``fortran_order``,
``shape``), padding, then exactly ``prod(shape) * itemsize`` bytes of data; ``numpy.save`` writes
nothing after them. So the file's size must equal the header's end plus that many bytes: fewer
means the file was cut short, more means it is not the array its header describes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtlrun.errors import ConfigError

#: dtype kinds a dataset array may hold: booleans, signed and unsigned integers, floats
NUMERIC_KINDS = "biuf"


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` file's header says, and the file's size on disk."""

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int
    file_size: int

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f"shape {self.shape}, dtype {self.dtype}"


def read_header(path: Path, what: str) -> NpyHeader:
    """The header of ``path``, checked against its size; a :class:`ConfigError` naming the file if
    it is missing, not a ``.npy`` file, cut short, longer than its array, or of Python objects.

    ``what`` starts the message (``dataset=nyuv2``), so the user sees which dataset read it.
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version in ((2, 0), (3, 0)):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unknown .npy format version {version}")
            offset = handle.tell()
    except FileNotFoundError:
        raise ConfigError(f"{what}: missing file {path}") from None
    except OSError as ex:
        raise ConfigError(f"{what}: cannot read {path} ({ex.strerror or type(ex).__name__})") from None
    except (ValueError, SyntaxError, EOFError) as ex:  # bad magic, a header cut short or not a literal
        reason = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise ConfigError(f"{what}: {path} is not a readable .npy array ({reason})") from None
    header = NpyHeader(Path(path), tuple(int(d) for d in shape), np.dtype(dtype), bool(fortran_order), offset, size)
    if header.dtype.hasobject:
        raise ConfigError(
            f"{what}: {path} holds Python objects ({header.dtype}); save numbers (numpy.save of a numeric array)"
        )
    expected = offset + header.data_bytes
    if size < expected:
        raise ConfigError(
            f"{what}: {path} is cut short: {size} bytes, its header ({header.describe()}) needs {expected}; "
            "copy or write it again"
        )
    if size > expected:
        raise ConfigError(
            f"{what}: {path} has {size - expected} bytes after the array its header describes ({header.describe()}); "
            "it is not a file numpy.save wrote"
        )
    return header


def require_numeric(header: NpyHeader, what: str) -> None:
    """Refuse an array that is not numbers (strings, structured records, datetimes)."""
    if header.dtype.kind not in NUMERIC_KINDS:
        raise ConfigError(
            f"{what}: {header.path} holds {header.dtype} values; a dataset array holds numbers (bool, int or float)"
        )


def check_alike(paths: Sequence[Path], what: str) -> NpyHeader:
    """Every file of ``paths`` is a sound numeric ``.npy`` array of the first one's shape (a batch
    stacks them; their number types may differ, each becomes float32); returns the first header.
    One line names the first file that is damaged or differs."""
    if not paths:
        raise ValueError("check_alike needs at least one file")
    first = read_header(paths[0], what)
    require_numeric(first, what)
    known = _prefix(paths[0], first.data_offset)
    for path in paths[1:]:
        if _prefix(path, first.data_offset) == known:
            continue  # the first file's very header and size: nothing new to parse
        header = read_header(path, what)
        require_numeric(header, what)
        if header.shape != first.shape:
            raise ConfigError(
                f"{what}: {path} has shape {header.shape}, but {paths[0].name} beside it has {first.shape}; "
                "every example of a field must have the same shape"
            )
    return first


def _prefix(path: Path, length: int) -> tuple[bytes, int] | None:
    """The first ``length`` bytes of ``path`` (magic, version and header) and its size, or None."""
    try:
        with open(path, "rb") as handle:
            return handle.read(length), os.fstat(handle.fileno()).st_size
    except OSError:
        return None

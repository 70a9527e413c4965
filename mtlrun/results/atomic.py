"""Atomic writes for everything in a run folder: a run killed at any point leaves readable files.

Each file is written to a temporary sibling and renamed over the target (``os.replace`` is
atomic on POSIX and Windows), so a reader sees either the previous or the new version. The
temporary is created with the user's umask (``0666 & ~umask``, see :mod:`mtlrun.results.file_modes`),
so the renamed file is as readable as one written with ``open()``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from mtlrun.results.file_modes import new_temporary


class WriteFailed(OSError):
    """Writing a file failed (disk full, no permission); its previous version is intact."""


def _atomic(path: Path, write: Callable[[IO[Any]], object], mode: str = "w") -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = new_temporary(path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as ex:
        raise _failed(path, ex) from ex
    try:
        text_options: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **text_options) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as ex:
        tmp.unlink(missing_ok=True)
        if isinstance(ex, OSError) and not isinstance(ex, WriteFailed):
            raise _failed(path, ex) from ex
        if isinstance(ex, RuntimeError) and "write failed" in str(ex):  # torch.save's zip writer
            raise _failed(path, OSError(str(ex).splitlines()[0])) from ex
        raise


def _failed(path: Path, ex: OSError) -> WriteFailed:
    """One line naming the file and the system's reason (``No space left on device``)."""
    failed = WriteFailed(f"could not write {path}: {ex.strerror or ex}; its previous version is kept")
    failed.errno = ex.errno
    return failed


def _jsonable(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as strings so files stay strictly valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    _atomic(path, lambda f: json.dump(_jsonable(data), f, indent=2, sort_keys=False))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    _atomic(path, lambda f: f.writelines(json.dumps(_jsonable(r)) + "\n" for r in rows))


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text))


def write_figure(path: Path, figure: Any, format: str = "png", **options: Any) -> None:
    """A matplotlib figure saved to exactly ``path`` (never ``path`` plus a suffix) in ``format``."""
    _atomic(path, lambda f: figure.savefig(f, format=format, **options), mode="wb")


def save_torch(path: Path, obj: Any) -> None:
    import torch

    _atomic(path, lambda f: torch.save(obj, f), mode="wb")

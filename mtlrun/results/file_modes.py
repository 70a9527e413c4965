"""Every file mtlrun writes gets the permissions the user's umask gives: ``0666 & ~umask``.

Results are shared: a colleague reads a run folder, a sweep on a shared filesystem reuses one
baseline cache. Files written with ``open()`` already get ``0666 & ~umask`` (0644 under the usual
umask 022, 0664 under 002, 0600 under 077). The atomic writes do not use ``open()`` on the target:
they write a temporary sibling and rename it over the target, and ``tempfile.mkstemp`` creates that
temporary with mode 0600 on purpose (private scratch files), so every renamed result stayed private.

:func:`new_temporary` creates the temporary like ``open()`` creates a file: ``os.open(...,
O_CREAT | O_EXCL, 0o666)``, so the kernel applies the umask (and a folder's default ACL) at the
moment of creation. Nothing reads or changes the process-wide umask for that, so it is safe in
threads and follows a umask changed while the process runs.

:func:`umask` is for the one caller that must pass an explicit mode (``filelock``, which sets its
lock file's mode with ``fchmod`` in the versions mtlrun supports, bypassing the umask). It never
calls ``os.umask``, which can only read the value by changing it, process-wide and racing with
other threads: it reads the ``Umask:`` line of ``/proc/self/status`` (Linux 4.7+), and elsewhere
creates a probe file with mode 0o777 in a fresh private folder and reads back the mode the kernel
gave it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

#: the mode ``open()`` asks for; the kernel removes the umask's bits
REQUESTED_MODE = 0o666
#: how many random names to try before giving up (mkstemp's own limit)
_ATTEMPTS = 100
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def new_temporary(directory: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """Create a new, empty file in ``directory`` with a random name, as ``tempfile.mkstemp`` does,
    but with the umask's permissions (``0666 & ~umask``) instead of 0600; return ``(fd, path)``."""
    for _ in range(_ATTEMPTS):
        path = Path(directory) / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(path, _FLAGS, REQUESTED_MODE), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory} after {_ATTEMPTS} tries")


def umask() -> int:
    """The process's current umask, read without changing it (see the module docstring)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _probed_umask()


def _probed_umask() -> int:
    folder = tempfile.mkdtemp(prefix=".mtlrun-umask-")
    try:
        fd = os.open(os.path.join(folder, "probe"), _FLAGS, 0o777)  # every bit asked, so every bit shows
        try:
            mode = os.fstat(fd).st_mode & 0o777
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0o777 & ~mode


def shared_mode() -> int:
    """The mode a new file gets from ``open()`` under the current umask (0644 under umask 022)."""
    return REQUESTED_MODE & ~umask()

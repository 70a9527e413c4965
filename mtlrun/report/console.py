"""The terminal output of every command: rich on a terminal, never a truncated number off one.

Off a terminal (a file, ``| cat``, ``tee``, a SLURM log) rich assumes 80 columns, wraps log lines
and squeezes table cells into ``0.5…``; a number cut short is worse than no number. So when the
stream is not a TTY the console is as wide as any line needs (rows are as long as their content,
cells never truncated) and log records are plain lines without rich's time/level columns.
On a terminal nothing changes: rich's shared console, which the progress bar also draws on.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

#: the width of a console that is not a terminal: wide enough for any table row, never reached
UNLIMITED = 100_000


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = stream if stream is not None else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def make_console(file: IO[str] | None = None) -> Any:
    """A rich Console for ``file`` (default stdout): the shared one on a terminal, else unlimited width."""
    from rich.console import Console

    if is_terminal(file):
        if file is None:
            from rich import get_console

            return get_console()
        return Console(file=file)
    return Console(file=file, width=UNLIMITED, highlight=False, soft_wrap=False)


class PlainHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log records as whole lines on stdout (looked up at each record, so redirections apply)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stdout

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        """The stream is always the current stdout; what logging sets is ignored."""

    def format(self, record: logging.LogRecord) -> str:
        """Warnings and errors keep their level in front, as rich's level column shows it on a terminal."""
        text = super().format(record)
        return f"{record.levelname}: {text}" if record.levelno >= logging.WARNING else text


def console_handler(**options: Any) -> logging.Handler:
    """The console log handler of ``conf/hydra/job_logging``: rich on a terminal, plain lines otherwise."""
    if is_terminal():
        from rich.logging import RichHandler

        return RichHandler(**options)
    return PlainHandler()

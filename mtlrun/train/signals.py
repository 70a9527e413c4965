"""SIGINT and SIGTERM during training: stop cleanly at the next step boundary.

The first signal only sets a flag; the trainer asks for it after every step (a Python check, no
device sync), finishes that step, and raises :class:`Interrupted`, so the checkpoint written then
holds a consistent state and ``summary.json`` says ``interrupted``. A second signal means "now":
it raises at once, wherever the process is; every file of a run folder is written to a temporary
sibling and renamed into place, so that leaves no half-written file. The exit status is
``128 + signal`` (130 for SIGINT, 143 for SIGTERM), as a shell reports a killed command.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by ``signum``; the process should exit with ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopFlag:
    """Set by the first SIGINT/SIGTERM; calling it returns the signal number (None if none came)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> int | None:
        return self.signum

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # the second signal: stop now
            raise Interrupted(signum)
        self.signum = signum
        name = signal.Signals(signum).name
        import logging

        logging.getLogger("mtlrun").warning(
            "%s: stopping after the current step (checkpoint and summary follow); send it again to stop at once",
            name,
        )


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Within the block, SIGINT/SIGTERM set the yielded flag instead of raising (main thread only;
    elsewhere the flag is never set and the default handling stays)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous: dict[int, Any] = {s: signal.getsignal(s) for s in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, flag.handle)
    try:
        yield flag
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)

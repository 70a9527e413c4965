"""The errors of the Python API: raised where the ``mtlrun`` command would exit with a non-zero status.

=========================  ===========  ==========================================================
raised                     exit status  when
=========================  ===========  ==========================================================
``mtlrun.ConfigError``     2            a config mistake; nothing is left behind (no run folder)
:class:`RunFailed`         1            any other failure; the folder's summary says ``failed``
:class:`RunDiverged`       3            a single run went non-finite; summary ``diverged``
:class:`SweepFailed`       1            a sweep ended with failed jobs (its sweep summary lists them)
:class:`RunInterrupted`    128 + signal a signal stopped the run; continue it with ``resume=FOLDER``
=========================  ===========  ==========================================================

Each carries ``exit_code`` (the command's status) and, once a run folder exists, the run's
:class:`~mtlrun.api.results.RunResult` read back from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mtlrun.errors import DIVERGED_EXIT, FAILED_EXIT

if TYPE_CHECKING:
    from mtlrun.api.results import RunResult


class RunError(Exception):
    """A run that ended without completing; ``result`` is its folder read back (None if it has none)."""

    exit_code = FAILED_EXIT

    def __init__(self, message: str, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result

    @property
    def folder(self) -> Path | None:
        return self.result.folder if self.result is not None else None


class RunFailed(RunError):
    """The run failed (a crash, a full disk): the command exits with status 1."""


class RunDiverged(RunError):
    """A single run's loss or gradient went non-finite: the command exits with status 3.

    In a sweep a diverged job is a result, not an error: :func:`mtlrun.sweep` returns it with
    ``status == "diverged"``.
    """

    exit_code = DIVERGED_EXIT


class SweepFailed(RunFailed):
    """A sweep ended with failed or interrupted jobs; ``results`` holds every job, in job order."""

    def __init__(self, message: str, results: list[RunResult]) -> None:
        super().__init__(message)
        self.results = results


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run (or sweep) in ``folder``; ``mtlrun.fit(overrides=["resume=FOLDER"])``
    (``mtlrun.sweep`` for a sweep) continues it. A ``KeyboardInterrupt``, so it stops a notebook cell
    or a loop of runs as Ctrl-C does."""

    def __init__(self, message: str, folder: Path | None, exit_code: int, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.folder = folder
        self.exit_code = exit_code
        self.result = result

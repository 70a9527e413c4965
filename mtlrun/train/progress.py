"""Progress display: a rich bar on a terminal, plain per-epoch log lines otherwise (CI, files)."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

log = logging.getLogger("mtlrun")


class Progress:
    """Shows training progress; ``live`` only when the console is an interactive terminal."""

    def __init__(self, total_epochs: int, steps_per_epoch: int, enabled: bool = True) -> None:
        from mtlrun.report.console import is_terminal

        self.live = enabled and is_terminal()
        self.total_epochs = total_epochs
        self.steps_per_epoch = steps_per_epoch
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("training", total=self.total_epochs * self.steps_per_epoch, status="")
        return self

    def advance(self, steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, steps)

    def epoch_done(self, message: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, status=message[:80])
        log.info(message)

    def __exit__(self, kind: type | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

"""A run's results as typed values, read back from its run folder: :class:`RunResult` and :func:`load_run`.

``mtlrun.fit`` returns exactly what ``load_run`` reads from the folder it wrote, so a result in
hand and one loaded a week later compare equal. Everything comes through the run folder's readers
(:class:`mtlrun.results.run_folder.RunFolder`: ``summary.json`` as a :class:`~mtlrun.results.run_folder.Summary`, the
config with ``yaml.safe_load``, ``transfer.json`` as JSON); nothing is unpickled, no checkpoint is
loaded and torch is not imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlrun.results.run_folder import CONFIG, METRICS, SUMMARY, Metrics, RunFolder, RunFolderError, Summary
from mtlrun.results.transfer_report import TransferReport


@dataclass(frozen=True)
class RunResult:
    """One run: where its folder is, how it ended and what it measured.

    ``status`` is ``completed``, ``diverged``, ``failed``, ``interrupted`` (or ``running`` for a run
    still under way). ``metrics`` are the test metrics ``{task: {metric: value}}`` at the epoch with
    the best validation score (``best_epoch``), the row ``summary.json`` records as ``best``; any
    other split or the last epoch: :meth:`results`. ``delta_m`` is this run's Δm (percent, higher
    is better) against the single-task baselines of its own seed, from ``transfer`` (None when the
    run has no report, e.g. ``report.baselines=false``). ``config`` is ``.hydra/config.yaml`` as
    plain data and ``overrides`` the command line it was composed from (``.hydra/overrides.yaml``):
    ``mtlrun.fit(overrides=result.overrides)`` or ``mtlrun.fit(result.config)`` runs it again.
    """

    folder: Path
    status: str
    metrics: Metrics
    best_epoch: int | None
    delta_m: float | None
    transfer: TransferReport | None = field(repr=False)
    config: dict[str, Any] = field(repr=False)
    overrides: list[str] = field(repr=False)
    summary: Summary = field(repr=False)

    @property
    def completed(self) -> bool:
        return self.summary.completed

    @property
    def error(self) -> str | None:
        """Why the run failed or diverged (one line), or None."""
        return self.summary.error

    @property
    def report_error(self) -> str | None:
        """Why the negative-transfer report could not be made for a run that completed, or None."""
        return self.summary.report_error

    def results(self, at: str = "best", split: str = "test") -> Metrics:
        """``{task: {metric: value}}`` of ``split`` (``test``, ``val``) at the ``best``-validation or ``last`` epoch."""
        return self.summary.results(at, split)


def load_run(path: str | Path) -> RunResult:
    """Read the run folder ``path`` (``outputs/DATE/TIME`` or one job of a sweep) into a :class:`RunResult`.

    Raises :class:`~mtlrun.results.run_folder.RunFolderError` (one line) when ``path`` is not a run folder or
    its ``summary.json`` is unreadable.
    """
    root = Path(path).expanduser()
    folder = RunFolder(root)
    if not root.is_dir():
        raise RunFolderError(f"{path}: no such folder")
    if not folder.is_run():
        jobs = job_folders(root)
        hint = f"; it holds {len(jobs)} run(s): mtlrun.load_sweep({str(path)!r})" if jobs else ""
        raise RunFolderError(f"{path} is not a run folder (no {CONFIG}, no {SUMMARY} beside {METRICS}){hint}")
    summary, problem = folder.summary_or_reason()
    if summary is None:
        raise RunFolderError(f"{path}: {problem}")
    transfer = folder.read_transfer()
    return RunResult(
        folder=root.resolve(),
        status=summary.status,
        metrics=summary.results("best", "test"),
        best_epoch=summary.epoch("best"),
        delta_m=transfer.own_delta_m if transfer is not None else None,
        transfer=transfer,
        config=folder.read_config() or {},
        overrides=folder.read_overrides(),
        summary=summary,
    )


def job_folders(sweep_dir: Path) -> list[Path]:
    """The run folders at or below ``sweep_dir``: a sweep's jobs in job order (``hydra.job.num``), others by path."""
    from mtlrun.report.folders import find_run_folders

    def order(path: Path) -> tuple[float, str]:
        job = RunFolder(path).read_hydra().get("job")
        num = job.get("num") if isinstance(job, dict) else None
        return (float(num) if isinstance(num, int) else float("inf"), str(path))

    return sorted(find_run_folders([sweep_dir]), key=order)


def load_sweep(path: str | Path) -> list[RunResult]:
    """Every run under ``path`` (a sweep folder, or any folder above run folders), a sweep's jobs in job order."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise RunFolderError(f"{path}: no such folder")
    jobs = job_folders(root)
    if not jobs:
        raise RunFolderError(f"{path} holds no run folders")
    return [load_run(job) for job in jobs]


def folders_of(runs: Iterable[RunResult | str | Path]) -> list[Path]:
    """The folders of results, or of paths given as they are."""
    return [run.folder if isinstance(run, RunResult) else Path(run) for run in runs]

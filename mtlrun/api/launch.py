"""``mtlrun.fit`` and ``mtlrun.sweep``: the command's run and sweep, started from Python.

``fit(overrides=[...])`` is ``mtlrun OVERRIDES...`` and ``sweep(overrides=[...])`` is
``mtlrun -m OVERRIDES...``: the same Hydra application (:mod:`mtlrun.api.hydra_app`), the same
composition, callbacks (the run folder's guard, the sweep summary), logging and ``.hydra/`` files
written by Hydra's own ``Hydra.run`` and ``run_job``, the sweeper and launcher the config chooses,
and the same job (:func:`mtlrun.cli.task.run_hydra_job`). Where the command exits non-zero these
raise (:mod:`mtlrun.api.errors`); where it exits 0 they return what the run folder holds
(:func:`mtlrun.api.results.load_run`). The process is left as it was found
(:mod:`mtlrun.api.process_state`), so runs in a loop are the runs the command makes one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from mtlrun.api.errors import RunDiverged, RunFailed, RunInterrupted, SweepFailed
from mtlrun.api.hydra_app import (
    MULTIRUN_FLAGS,
    checked_overrides,
    config_error,
    hydra_app,
    is_hydra_override,
    resume_overrides,
    sweep_overrides,
    with_run_mode,
)
from mtlrun.api.process_state import kept_process_state
from mtlrun.api.results import RunResult, job_folders, load_run
from mtlrun.errors import ConfigError
from mtlrun.results.run_folder import RunFolderError

if TYPE_CHECKING:
    from hydra._internal.hydra import Hydra


def fit(config: DictConfig | Mapping[str, Any] | None = None, *, overrides: Sequence[str] | None = None) -> RunResult:
    """Train one run, as ``mtlrun OVERRIDES...`` does, and return its :class:`~mtlrun.api.results.RunResult`.

    Give the run as ``overrides`` (``["arch=mtan", "trainer.epochs=5"]``, ``["resume=FOLDER"]``) or
    as a ``config`` (a DictConfig from :func:`mtlrun.compose`, possibly edited, or a mapping; keys a
    mapping leaves out keep their defaults), which runs as the overrides that compose it; with a
    config, ``overrides`` may set Hydra's own settings only (``hydra.run.dir=...``).

    Raises ``mtlrun.ConfigError`` for a config mistake (nothing is written), :class:`RunDiverged`
    (the command's exit status 3), :class:`RunFailed` (1) and :class:`RunInterrupted` (128 + signal).
    """
    from mtlrun.cli.folder_guard import NothingToResume, Refused
    from mtlrun.cli.main import CONFIG_NAME
    from mtlrun.cli.resume import resuming_folder

    with kept_process_state(), hydra_app() as hydra:
        args, resumed = run_overrides(hydra, config, overrides)
        if any(a in MULTIRUN_FLAGS for a in args):
            raise ConfigError("this resumes a sweep; continue it with mtlrun.sweep(overrides=['resume=FOLDER'])")
        sweeping = sweep_overrides(args)
        if sweeping:
            raise ConfigError(f"'{sweeping[0]}' sweeps over values; run it with mtlrun.sweep(overrides=[...])")
        args = with_run_mode(hydra, args, multirun=False)
        task = RunTask()
        try:
            with resuming_folder(resumed):
                hydra.run(config_name=CONFIG_NAME, task_function=task, overrides=args)
        except Refused as ex:  # the folder's guard, before Hydra wrote anything
            raise ex.error from None
        except NothingToResume as ex:  # the folder is left as it was: its result as it stands
            return load_run(ex.folder)
        except KeyboardInterrupt as ex:
            raise interruption(ex, task.folder, "fit", result_or_none(task.folder)) from ex
        except Exception as ex:
            raise failure(ex, task.folder) from ex
    if task.refused is not None:
        raise task.refused
    result = load_run(task.folder) if task.folder is not None else None
    if result is None:
        raise RunFailed("the run ended without a run folder")
    if task.diverged is not None:
        raise RunDiverged(task.diverged, result)
    return result


def sweep(overrides: Sequence[str] | None = None) -> list[RunResult]:
    """Run the sweep ``mtlrun -m OVERRIDES...`` runs (``["seed=0,1,2", "arch=hps,mtan"]``, ``["sweep=NAME"]``,
    ``["resume=SWEEP_FOLDER"]``) and return a result per job, in job order.

    The sweeper and launcher are those of the config (``hydra/launcher=joblib`` runs jobs in parallel
    processes), the sweep-end summary is written as the command writes it. A diverged or failed job
    is a result (``status``); a sweep with failed jobs raises :class:`SweepFailed` (the command's exit
    status 1), which holds every result.
    """
    from mtlrun.cli.folder_guard import Refused
    from mtlrun.cli.resume import resuming_folder

    with kept_process_state(), hydra_app() as hydra:
        args, resumed = run_overrides(hydra, None, overrides)
        if any(o.startswith("resume=") for o in overrides or ()) and not any(a in MULTIRUN_FLAGS for a in args):
            raise ConfigError("this resumes a single run; continue it with mtlrun.fit(overrides=['resume=FOLDER'])")
        args = with_run_mode(hydra, [a for a in args if a not in MULTIRUN_FLAGS], multirun=True)
        state = SweepState()
        try:
            with resuming_folder(resumed):
                run_sweep(hydra, args, state)
        except Refused as ex:
            raise ex.error from None
        except KeyboardInterrupt as ex:
            raise interruption(ex, state.sweep_dir, "sweep") from ex
        except Exception as ex:
            raise failure(ex, None) from ex
    assert state.sweep_dir is not None
    results, unreadable = [], []
    for job in job_folders(state.sweep_dir):
        try:
            results.append(load_run(job))
        except RunFolderError as ex:
            unreadable.append(str(ex))
    if state.failed:
        problems = [
            f"{r.folder.name}: {r.status} ({r.error})" for r in results if r.status not in ("completed", "diverged")
        ]
        raise SweepFailed(
            f"{len(problems) + len(unreadable)} job(s) of the sweep {state.sweep_dir} failed: "
            + "; ".join(problems + unreadable),
            results,
        )
    return results


def run_overrides(hydra: Hydra, config: Any, overrides: Sequence[str] | None) -> tuple[list[str], Path | None]:
    """The overrides of a run given as overrides, or as a config plus Hydra's own overrides, and the
    folder it resumes (``resume=FOLDER``; None for a new run)."""
    if config is None:
        return resume_overrides(overrides)
    from mtlrun.api.config_overrides import config_overrides

    extra = checked_overrides(overrides) if overrides else []
    own = [o for o in extra if not is_hydra_override(o)]
    if own:
        raise ConfigError(
            f"with a config, overrides may only set Hydra's own settings (hydra.run.dir=..., hydra/job_logging=...); "
            f"set '{own[0]}' in the config instead"
        )
    return checked_overrides(config_overrides(hydra, config)) + extra, None


class RunTask:
    """The task function of a run started by :func:`fit`: the command's job, where the two endings
    the command gives one line and an exit status (a diverged run, a bad option found with the data)
    are kept for :func:`fit` to raise. Any other error goes through Hydra's ``run_job`` as it does
    for the command (the job is marked failed, and Hydra names the job's overrides on stderr)."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.diverged: str | None = None
        self.refused: ConfigError | None = None

    def __call__(self, cfg: DictConfig) -> float | None:
        from hydra.core.hydra_config import HydraConfig

        from mtlrun.cli.task import diverged_message, run_hydra_job
        from mtlrun.train.loop import Diverged

        self.folder = Path(HydraConfig.get().runtime.output_dir)
        try:
            return run_hydra_job(cfg)
        except Diverged as ex:
            self.diverged = diverged_message(ex, self.folder)
        except ConfigError as ex:  # the folder it created is gone already
            self.refused = ex
        return None


@dataclass
class SweepState:
    """What :func:`run_sweep` found out: the sweep folder, and whether the sweep ended with failed jobs."""

    sweep_dir: Path | None = None
    failed: bool = False


def run_sweep(hydra: Hydra, overrides: list[str], state: SweepState) -> None:
    """Hydra 1.3's ``Hydra.multirun``, step for step, keeping its composed config (whose sweep folder,
    ``${now:...}`` included, resolves to the one the launcher used) and catching the sweep summary's
    exit (``SystemExit(1)`` when a job failed) after everything else has run."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode
    from omegaconf import OmegaConf

    from mtlrun.cli.main import CONFIG_NAME
    from mtlrun.cli.task import run_hydra_job

    cfg = hydra.compose_config(
        config_name=CONFIG_NAME, overrides=overrides, with_log_configuration=True, run_mode=RunMode.MULTIRUN
    )
    callbacks = Callbacks(cfg)
    callbacks.on_multirun_start(config=cfg, config_name=CONFIG_NAME)
    state.sweep_dir = Path(str(cfg.hydra.sweep.dir)).resolve()
    sweeper = Plugins.instance().instantiate_sweeper(
        config=cfg,
        hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=callbacks),
        task_function=run_hydra_job,
    )
    task_overrides = OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)
    assert isinstance(task_overrides, list)
    sweeper.sweep(arguments=task_overrides)
    try:
        callbacks.on_multirun_end(config=cfg, config_name=CONFIG_NAME)
    except SystemExit as ex:
        if ex.code not in (0, None):
            state.failed = True


def result_or_none(folder: Path | None) -> RunResult | None:
    """The run in ``folder`` as far as it got, or None (no folder, or no readable summary in it)."""
    if folder is None:
        return None
    try:
        return load_run(folder)
    except RunFolderError:
        return None


def failure(ex: Exception, folder: Path | None) -> Exception:
    """The error :func:`fit` or :func:`sweep` raises for ``ex``: a one-line :class:`ConfigError` where the
    command exits 2, else :class:`RunFailed` (exit 1) with the one line the command prints."""
    from mtlrun.cli.user_errors import describe_error
    from mtlrun.results.atomic import WriteFailed

    error = config_error(ex)
    if error is not None:
        return error
    message = str(ex) if isinstance(ex, WriteFailed) else describe_error(ex)
    return RunFailed(message, result_or_none(folder))


def interruption(
    ex: KeyboardInterrupt, folder: Path | None, how: str, result: RunResult | None = None
) -> RunInterrupted:
    code = int(getattr(ex, "exit_code", 130))
    reason = f" ({ex})" if str(ex) else ""
    if folder is None or not folder.exists():
        return RunInterrupted(f"interrupted{reason}", None, code, result)
    return RunInterrupted(
        f"interrupted{reason}; continue it with mtlrun.{how}(overrides=['resume={folder}'])", folder, code, result
    )

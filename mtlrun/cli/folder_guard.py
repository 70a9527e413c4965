"""Never write into a folder that already holds a run.

Hydra creates the run folder and writes ``.hydra/`` before the task starts, so the check runs as a
Hydra callback at ``on_run_start`` / ``on_multirun_start``: after the config is composed and
before Hydra creates or writes anything. The config checks that need no data run there too
(unknown ``+keys``, ranges, settings that would do nothing), so they leave no folder. A folder
that holds a run is refused with one line (exit 2) unless ``run.overwrite=true``, which moves the
old folder aside under a visible name instead of deleting it. A run folder this invocation created
is removed again when the run stops on a configuration error, so a bad option leaves nothing behind.
A sweep's jobs are composed and checked before its folder exists (:func:`check_sweep_jobs`).

Two processes that pick the same folder (started in the same microsecond, or given the same
``hydra.run.dir``) cannot both take it: the folder is claimed by creating ``.mtlrun-claim`` with
``O_CREAT | O_EXCL``, which exactly one of them wins on any POSIX filesystem; the other is refused
with one line. A config whose ``resume`` names the run (or sweep) folder re-enters it and skips the claim.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mtlrun.errors import ConfigError
from mtlrun.results.file_modes import REQUESTED_MODE
from mtlrun.results.run_folder import CHECKPOINTS, HYDRA_DIR, METRICS, SUMMARY, Summary

#: created with O_EXCL by the one process that takes a run or sweep folder
CLAIM = ".mtlrun-claim"
#: what marks a folder as holding a run (or a sweep's job)
RUN_MARKERS = (HYDRA_DIR, SUMMARY, METRICS, CHECKPOINTS, "multirun.yaml", CLAIM)
#: run folders this process created (removed again on a configuration error)
_created: set[Path] = set()
#: folders this process claimed (``CLAIM`` written)
_claimed: set[Path] = set()


def holds_run(path: Path) -> bool:
    """Whether ``path`` holds a run, a sweep, or a sweep's job."""
    if not path.is_dir():
        return False
    if any((path / marker).exists() for marker in RUN_MARKERS):
        return True
    return any(child.is_dir() and any((child / m).exists() for m in RUN_MARKERS) for child in path.iterdir())


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``<path>.replaced-<time>`` (a visible, unique name) and return it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.replaced-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.replaced-{stamp}-{n}")
    path.rename(target)
    return target


def claim(path: Path, *, overwrite: bool, key: str) -> None:
    """Refuse ``path`` if it holds a run (or is a file); with ``overwrite`` move the old one aside."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={path} is a file, not a folder; choose another {key}")
    if holds_run(path):
        if not overwrite:
            what = "a sweep" if key == "hydra.sweep.dir" else "a run"
            raise ConfigError(
                f"{path} already holds {what}; continue it with resume={path}, choose another {key}, "
                "or add run.overwrite=true to move the old one aside (it is kept, renamed)"
            )
        moved = move_aside(path)
        import logging

        logging.getLogger("mtlrun").warning("moved the previous run in %s aside to %s", path, moved)
    if not path.exists():
        _created.add(path.resolve())
    take(path, key)


def take(path: Path, key: str) -> None:
    """Create ``path`` and its claim marker exclusively; refuse if another process got there first."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, REQUESTED_MODE)
    except FileExistsError:
        raise ConfigError(
            f"{path} was just taken by another mtlrun process; choose another {key} (or start again)"
        ) from None
    except OSError as ex:
        raise ConfigError(f"{key}={path} cannot be created ({ex.strerror or type(ex).__name__})") from None
    _claimed.add(path.resolve())
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()}\n")


def begin_invocation() -> None:
    """Forget the folders earlier invocations in this process made (the Python API and tests run many),
    so that a mistake removes only what the current one created."""
    _created.clear()
    _claimed.clear()


def created_here(path: Path) -> bool:
    """Whether this invocation created ``path`` (a run or sweep folder it claimed as new)."""
    return path.resolve() in _created


def release_if_created(path: Path, stop_at: Path) -> bool:
    """Remove ``path`` if this process created it (and its parents up to ``stop_at`` if they are
    left empty); return whether it was removed."""
    resolved = path.resolve()
    if resolved not in _created:
        if resolved in _claimed:  # a folder that existed before: give back only the claim
            (resolved / CLAIM).unlink(missing_ok=True)
            _claimed.discard(resolved)
        return False
    shutil.rmtree(resolved, ignore_errors=True)
    _created.discard(resolved)
    parent, stop = resolved.parent, stop_at.resolve()
    while parent != stop and stop in parent.parents:
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
        parent = parent.parent
    return True


def release_created(stop_at: Path) -> list[Path]:
    """Remove every folder this process created (a run or sweep stopped by a configuration error
    that surfaced after its folder existed); return the removed ones."""
    removed = []
    for path in sorted(_created):
        if release_if_created(path, stop_at):
            removed.append(path)
    return removed


def _overwrite(config: DictConfig) -> bool:
    return bool(OmegaConf.select(config, "run.overwrite", default=False))


class Refused(SystemExit):
    """A refusal before Hydra writes anything: exit status 2, with the :class:`ConfigError` saying why.

    A ``SystemExit``, because Hydra turns an exception raised in a callback into a warning and goes
    on; the command prints ``error`` as its one line (``mtlrun.cli.main``), the Python API raises it.
    """

    def __init__(self, error: ConfigError) -> None:
        super().__init__(error.exit_code)
        self.error = error


class NothingToResume(SystemExit):
    """A resume of a run that has finished (or diverged on its way to) the epochs asked for: exit
    status 0 before Hydra writes anything, so the folder stays byte-identical."""

    def __init__(self, folder: Path, summary: Summary, objective: float | None) -> None:
        super().__init__(0)
        self.folder, self.summary, self.objective = folder, summary, objective

    def show(self) -> None:
        """Say so, with the run's per-task table, as a run that has just finished would."""
        import logging

        from mtlrun.report.tables import print_run_summary

        logging.getLogger("mtlrun").info("%s has %s already: nothing to resume", self.folder, self.summary.status)
        print_run_summary(self.summary, self.folder)


class RunFolderGuard(Callback):
    """Hydra callback: check the run or sweep folder before Hydra writes into it (a refusal is
    :class:`Refused`, a completed resume :class:`NothingToResume`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        begin_invocation()
        _refuse_bad_settings(config)
        path = Path(str(config.hydra.run.dir))
        if resuming(path):
            _check_resume_or_exit(config, path)
        else:
            _claim_or_exit(path, _overwrite(config), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        begin_invocation()
        _refuse_bad_sweep(config)
        path = Path(str(config.hydra.sweep.dir))
        if not resuming(path):
            try:
                check_sweep_jobs(config)
            except ConfigError as ex:
                raise Refused(ex) from None
            _claim_or_exit(path, _overwrite(config), "hydra.sweep.dir")


#: the sweeper whose jobs are known before the sweep starts (a search such as optuna picks them as it goes)
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


#: sweeps up to this many jobs have every job checked; larger ones every value of every swept key
#: (composing a job costs about a quarter of a second, and Hydra composes each once more itself)
CHECK_EVERY_JOB = 32


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """The overrides of the jobs to check before the basic sweeper launches them (its ``params`` and
    the command line's sweeps, expanded as it expands them): every job of a sweep of at most
    :data:`CHECK_EVERY_JOB`, else jobs that together take every value of every swept key once.
    Empty for any other sweeper (a search such as optuna picks its jobs as it goes)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if str(OmegaConf.select(config, "hydra.sweeper._target_", default="")) != BASIC_SWEEPER:
        return []
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += [str(o) for o in config.hydra.overrides.task]
    overrides = OverridesParser.create().parse_overrides(arguments)
    jobs = [list(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    if len(jobs) <= CHECK_EVERY_JOB:
        return jobs
    swept = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.input_line]
        for o in overrides
    ]
    return [[values[i % len(values)] for values in swept] for i in range(max(len(v) for v in swept))]


def check_sweep_jobs(config: DictConfig) -> None:
    """Compose the jobs of :func:`sweep_jobs` and run :func:`check_settings` on each, before the sweep
    folder exists: a bad choice (``-m arch=hps,nope``) or value (``trainer.lr=0.1,-1``) refuses the
    whole sweep with one line instead of failing after other jobs ran. Not for a resumed sweep: each
    job checks itself against its folder."""
    from hydra.core.global_hydra import GlobalHydra

    jobs = sweep_jobs(config)
    if not jobs or not GlobalHydra.instance().is_initialized():
        return
    loader = GlobalHydra.instance().config_loader()
    for overrides in jobs:
        try:
            job_config = loader.load_sweep_config(config, overrides)
        except ConfigError:
            raise
        except Exception as ex:
            from mtlrun.cli.user_errors import describe_error, is_user_error

            if not is_user_error(ex):
                raise
            raise ConfigError(describe_error(ex)) from None
        job = OmegaConf.masked_copy(job_config, [str(k) for k in job_config.keys() if k != "hydra"])
        check_settings(job)


def resuming(path: Path) -> bool:
    """A resume re-enters its own folder (``resume=FOLDER`` names this run or sweep folder)."""
    from mtlrun.cli.resume import resumes

    return resumes(path)


#: checkpoints the guard has loaded and checked, by run folder, for the job to continue from
_checked: dict[Path, dict[str, Any]] = {}


def checked_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The checkpoint the guard checked for a resume of ``folder`` (handed over once), or None."""
    return _checked.pop(folder.resolve(), None)


def check_settings(job: DictConfig) -> None:
    """The config checks that need no data (unknown ``+keys``, ranges, settings that would do nothing):
    a :class:`ConfigError` for the first problem. The run repeats them (``validate``)."""
    from mtlrun.config.inert import check_inert
    from mtlrun.config.schema import check_resolvable, plain, validate
    from mtlrun.loggers import check_logger

    check_resolvable(job)  # a bad ${...} would otherwise surface inside validate as a raw error
    validate(job)
    check_inert(job)  # after the range checks, so a bad value is named as bad rather than as inert
    check_logger(plain(job.get("logger")))  # log folders writable, tracking URIs well formed and reachable


def _refuse_bad_settings(config: DictConfig) -> None:
    """:func:`check_settings` stops the run before its folder exists: one line, exit 2."""
    job = OmegaConf.masked_copy(config, [str(k) for k in config.keys() if k != "hydra"])
    try:
        check_settings(job)
    except ConfigError as ex:
        raise Refused(ex) from None


def _refuse_bad_sweep(config: DictConfig) -> None:
    """Before the sweep folder exists: every value the sweep gives an option, and the options all of
    its jobs share, inside their declared ranges (one line, exit 2, no job started)."""
    from mtlrun.config.schema import range_problems, sweep_problems

    job = OmegaConf.masked_copy(config, [str(k) for k in config.keys() if k != "hydra"])
    try:
        problems = sweep_problems(config) + range_problems(job)
    except Exception:  # the config cannot be read as composed: each job reports it in its own words
        return
    if problems:
        raise Refused(ConfigError("; ".join(dict.fromkeys(problems))))


def _check_resume_or_exit(config: DictConfig, path: Path) -> None:
    """Every check of a resume, before anything is written: the config composed now against the
    folder's, the checkpoint (readable, the same config, no more epochs than asked for), and
    whether anything is left to train."""
    from mtlrun.cli.resume import check_unchanged
    from mtlrun.results.objective import run_objective
    from mtlrun.train.resume import already_completed, resume_point

    job = OmegaConf.masked_copy(config, [str(k) for k in config.keys() if k != "hydra"])
    try:
        check_unchanged(config, path)
        checkpoint = resume_point(job, path, resuming=True)
    except ConfigError as ex:
        raise Refused(ex) from None
    done = already_completed(path, checkpoint, int(job.trainer.epochs))
    if done is not None and not os.environ.get("RANK"):  # a rank of torchrun's meets its peers first
        raise NothingToResume(path, done, run_objective(done, job.objective))
    if checkpoint is not None:
        _checked[path.resolve()] = checkpoint


def _claim_or_exit(path: Path, overwrite: bool, key: str) -> None:
    try:
        claim(path, overwrite=overwrite, key=key)
    except ConfigError as ex:
        raise Refused(ex) from None

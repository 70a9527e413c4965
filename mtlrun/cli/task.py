"""The Hydra task: run one job, print its per-task table and folder, and turn its outcome into the
CLI's exit status (2 a configuration error, 3 diverged, 1 any other failure)."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mtlrun.cli import ranks
from mtlrun.errors import DIVERGED_EXIT, FAILED_EXIT, ConfigError
from mtlrun.loggers import TrackerFailed
from mtlrun.results.atomic import WriteFailed
from mtlrun.results.run_folder import LAST_CHECKPOINT, SUMMARY, RunFolder, Summary
from mtlrun.results.transfer_report import TransferReport
from mtlrun.train import distributed
from mtlrun.train.loop import Diverged
from mtlrun.train.resume import already_completed, remove_stale_writes, resume_point
from mtlrun.train.run import run

log = logging.getLogger("mtlrun")


def run_hydra_job(cfg: DictConfig) -> float | None:
    """One Hydra job: run (or find it done already), print the per-task table and the folder, and
    return the objective; any failure is recorded in the folder's summary.

    In a sweep a failing job returns None, so the other jobs and the sweep-end callback still run;
    a configuration mistake in a job of a new sweep run in-process stops the sweep instead
    (:func:`stop_sweep`). A single run raises instead: :class:`Diverged`, :class:`ConfigError`
    (after removing the folder it created, so a bad option leaves nothing behind) or the error
    itself. The two faces turn these into their own terms: the command into exit statuses
    (:func:`run_from_hydra`), the Python API (:mod:`mtlrun.api`) into typed errors.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from mtlrun.report.tables import print_run_summary
    from mtlrun.results.objective import run_objective

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    writer = True  # data parallel: rank 0 alone writes and prints
    try:
        devices, nodes = int(cfg.trainer.get("devices", 1)), int(cfg.trainer.get("nodes", 1))
        distributed.check_world(devices, nodes)
        launching = distributed.wants_launch(devices, nodes)
        if distributed.process_env() is not None:  # started by torchrun or srun: one rank of the run
            from mtlrun.train.build import pick_device

            dp = distributed.current() or distributed.join(pick_device(cfg.trainer.device), cfg.trainer.data_parallel)
            writer = dp.is_writer
            if not writer:  # rank 0 alone logs (srun's tasks each start with the job's logging)
                root = logging.getLogger()
                for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
                    root.removeHandler(handler)
                root.setLevel(logging.WARNING)
            output_dir = distributed.share_folder(output_dir)  # rank 0's; the others composed a scratch one
        from mtlrun.cli.folder_guard import checked_checkpoint, resuming

        continues = resuming(output_dir) or (in_sweep and (output_dir / LAST_CHECKPOINT).is_file())
        checkpoint = resume_point(cfg, output_dir, resuming=continues, checked=checked_checkpoint(output_dir))
        if checkpoint is not None and writer:
            remove_stale_writes(output_dir)
        done = already_completed(output_dir, checkpoint, cfg.trainer.epochs)
        if done is not None:
            log.info("%s has %s already: nothing to resume", output_dir, done.status)
            if writer:
                print_run_summary(done, output_dir)
            return run_objective(done, cfg.objective)
        if launching:
            summary, report = launch_ranks(cfg, devices, output_dir, checkpoint is not None)
        else:
            try:
                summary, report = run(cfg, output_dir, checkpoint)
            finally:
                distributed.leave()  # a rank started by torchrun or srun ends its group, whatever happened
    except KeyboardInterrupt:
        raise
    except Diverged as ex:
        if in_sweep:  # a result, not a failure: the other jobs go on and the sweep summary lists it
            log.error("run diverged: %s (%s)", ex, output_dir)
            return None
        raise
    except ConfigError as ex:
        from mtlrun.cli.folder_guard import created_here, release_if_created

        if in_sweep:
            sweep_dir = Path(str(hydra_cfg.sweep.dir))
            if writer and in_process(hydra_cfg) and created_here(sweep_dir):  # a new sweep: the mistake stops it
                raise stop_sweep(ex, output_dir, sweep_dir, Path(hydra_cfg.runtime.cwd)) from None
            log.error("job failed: %s", ex)  # a resumed sweep, a launcher's worker: the sweep summary lists it
            return None
        if writer:
            release_if_created(output_dir, stop_at=Path(hydra_cfg.runtime.cwd))  # a bad option leaves no folder
        raise
    except Exception as ex:
        if not writer:
            raise
        folder = RunFolder(output_dir)
        summary = folder.read_summary() or Summary()
        if summary.status != "failed":
            reason = str(ex) if isinstance(ex, WriteFailed) else f"{type(ex).__name__}: {ex}"
            summary.status, summary.error = "failed", reason.splitlines()[0]
            try:
                folder.write_summary(summary)
            except WriteFailed as again:  # the disk is still full: say so, keep the original error
                log.error("%s", again)
        if not in_sweep:
            raise
        log.exception("job failed: %s", ex)
        return None
    if not writer:
        return None
    print_run_summary(summary, output_dir)
    if report is not None:
        from mtlrun.report.negative_transfer import print_verdicts

        print_verdicts(report)
    return run_objective(summary, cfg.objective)  # for sweepers such as optuna: higher is better


#: the launcher that runs a sweep's jobs one by one in the sweep's own process
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def in_process(hydra_cfg: Any) -> bool:
    """Whether the job runs in the process that launched the sweep (which a mistake can then stop)."""
    return str(getattr(hydra_cfg.launcher, "_target_", "")) == BASIC_LAUNCHER


def stop_sweep(ex: ConfigError, output_dir: Path, sweep_dir: Path, cwd: Path) -> ConfigError:
    """The error that stops a new sweep whose job met a configuration mistake only its data could
    show (the checks before the sweep passed). The failing job's folder goes, as a single run's does;
    the sweep folder goes too when no other job has written anything, else it stays with the jobs
    that finished (nothing already written is lost), and the line says so."""
    from mtlrun.cli.folder_guard import release_if_created

    others = [p for p in sweep_dir.glob(f"*/{SUMMARY}") if p.parent.resolve() != output_dir.resolve()]
    if not others:
        release_if_created(sweep_dir, stop_at=cwd)
        return ex
    shutil.rmtree(output_dir, ignore_errors=True)  # this job's folder: created by this very sweep
    return ConfigError(
        f"{ex} (job {output_dir.name}; the sweep stopped there: its {len(others)} earlier job(s) are kept "
        f"in {sweep_dir}; fix the value and run the sweep again)"
    )


def launch_ranks(
    cfg: DictConfig, devices: int, output_dir: Path, resuming: bool
) -> tuple[Summary, TransferReport | None]:
    """``trainer.devices=N`` from a plain ``mtlrun``: N ranks train into this job's folder (rank 0
    writes it, logging to its ``run.log``), continuing from its checkpoint when ``resuming``; their
    outcome is raised or returned as one process's."""
    import torch
    from omegaconf import OmegaConf

    from mtlrun.train.build import pick_device

    if pick_device(cfg.trainer.device).type == "cuda" and devices > torch.cuda.device_count():
        raise ConfigError(
            f"trainer.devices={devices} but this machine has {torch.cuda.device_count()} CUDA device(s); "
            "give at most that many, or trainer.device=cpu"
        )
    log_file = next((h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)), None)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    log.info("data parallel: starting %d processes (torch.distributed.run)", devices)
    outcome = ranks.launch(devices, resolved, output_dir, resuming, log_file)  # type: ignore[arg-type]
    kind = outcome[0]
    if kind == "config_error":
        raise ConfigError(outcome[1])
    if kind == "diverged":
        raise Diverged(outcome[1], outcome[2])
    if kind == "interrupted":
        from mtlrun.train.signals import Interrupted

        raise Interrupted(outcome[1])
    return outcome[1], outcome[2]


def diverged_message(ex: Diverged, output_dir: Path) -> str:
    """The one line of a single run that diverged: where, what is kept, what to try."""
    kept = "the last good checkpoint is kept" if (output_dir / LAST_CHECKPOINT).is_file() else "no checkpoint"
    return (
        f"run diverged: {ex}; {kept} ({output_dir / SUMMARY}); "
        "try a lower trainer.lr, trainer.grad_clip or trainer.on_nan=skip"
    )


def run_from_hydra(cfg: DictConfig) -> float | None:
    """The command's Hydra task: :func:`run_hydra_job`, where a single run that diverged exits with
    status 3, one stopped by a bad option with status 2 and one whose tracker failed with status 1,
    each after one line."""
    try:
        return run_hydra_job(cfg)
    except Diverged as ex:
        from hydra.core.hydra_config import HydraConfig

        print(f"mtlrun: {diverged_message(ex, Path(HydraConfig.get().runtime.output_dir))}", file=sys.stderr)
        sys.exit(DIVERGED_EXIT)
    except ConfigError as ex:
        print(f"mtlrun: error: {ex}", file=sys.stderr)
        sys.exit(ex.exit_code)
    except TrackerFailed as ex:  # the folder's summary says failed; the checkpoint continues it
        from hydra.core.hydra_config import HydraConfig

        print(f"mtlrun: error: {tracker_message(ex, Path(HydraConfig.get().runtime.output_dir))}", file=sys.stderr)
        sys.exit(FAILED_EXIT)


def tracker_message(ex: TrackerFailed, output_dir: Path) -> str:
    """The one line of a run whose tracker failed during training: what failed and how to go on."""
    kept = "continue it with: mtlrun resume=" if (output_dir / LAST_CHECKPOINT).is_file() else "see "
    return f"{ex}; the run stopped ({kept}{output_dir})"

"""Where a run continues from: its checkpoint, checked against the config composed now, and whether
there is anything left to train (see ``mtlrun.cli.resume`` for the ``resume=FOLDER`` command)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mtlrun.config.resumable import check_same_config
from mtlrun.config.schema import plain
from mtlrun.errors import ConfigError
from mtlrun.results.run_folder import LAST_CHECKPOINT, RunFolder, Summary

log = logging.getLogger("mtlrun")


def resume_point(
    cfg: DictConfig, output_dir: Path, *, resuming: bool, checked: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The checkpoint a run continues from, checked against ``cfg``; None when the run starts from
    the beginning: it is not ``resuming``, or the folder has no checkpoint yet. Reads only: nothing
    in the folder changes, so a refused resume leaves it as it was. ``checked`` is the checkpoint
    the run folder's guard has loaded and checked already (see ``mtlrun.cli.folder_guard``).

    A sweep's job resumes from its own checkpoint even without ``resume=``: its folder is new to
    every fresh sweep (the folder guard), so a checkpoint there is from an earlier attempt of this
    very job, such as a SLURM job pre-empted and requeued by submitit.
    """
    folder = RunFolder(output_dir)
    path = folder.path(LAST_CHECKPOINT)
    if not resuming:
        return None
    if checked is not None:
        return checked
    from mtlrun.train.checkpoint import load_checkpoint

    if not path.is_file():
        log.info("%s has no checkpoint yet: training from the start", output_dir)
        return None
    state = load_checkpoint(path)  # a damaged or foreign file: one CheckpointError line naming it
    if not isinstance(state.get("config"), dict) or "records" not in state:
        raise ConfigError(f"cannot resume from {path}: it is not a checkpoint of a resumable mtlrun run")
    check_same_config(state["config"], plain(cfg), output_dir)
    if int(state["epoch"]) > cfg.trainer.epochs:
        raise ConfigError(
            f"trainer.epochs={cfg.trainer.epochs} is fewer than the {state['epoch']} epochs {output_dir} has "
            "trained already; give at least that many"
        )
    return state


def remove_stale_writes(output_dir: Path) -> None:
    """Remove checkpoint writes a kill cut short (their temp files), once a resume is under way."""
    path = RunFolder(output_dir).path(LAST_CHECKPOINT)
    for stale in path.parent.glob(".*.pt.*.tmp"):
        stale.unlink(missing_ok=True)


def already_completed(output_dir: Path, checkpoint: dict[str, Any] | None, epochs: int) -> Summary | None:
    """The summary of a run that has finished ``epochs`` epochs, or diverged on its way to them
    (a resume then has nothing to do: the same state and seed would diverge at the same step)."""
    if checkpoint is None:
        return None
    summary = RunFolder(output_dir).read_summary()
    if summary is None:
        return None
    if summary.completed and int(checkpoint["epoch"]) == epochs and summary.epochs_completed == epochs:
        return summary
    planned = (checkpoint.get("config") or {}).get("trainer", {}).get("epochs")
    return summary if summary.status == "diverged" and planned == epochs else None

"""The ranks of ``mtlrun trainer.devices=N`` started from a plain ``mtlrun``: torch's elastic launcher
(the engine of ``torch.distributed.run``) runs :func:`worker` on N local processes, which train into
the job's folder (rank 0 writes it, see :mod:`mtlrun.train.distributed`), and their outcome comes
back as one process's: a result, a configuration error, a divergence, an interrupt, or the failure
of the rank that caused it."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from mtlrun.errors import ConfigError
from mtlrun.train.distributed import join, leave, process_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(devices: int, cfg: dict[str, Any], output_dir: Path, resuming: bool, log_file: str | None) -> Any:
    """Run :func:`worker` on ``devices`` local processes with torch's elastic launcher and return
    rank 0's outcome; a failure on any rank stops every rank and raises :class:`RankFailed`."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # failures are reported below
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=devices,
        run_id=f"mtlrun-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{_free_port()}",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mtlrun-ranks-") as errors:
        try:
            outcomes = elastic_launch(config, worker)(cfg, str(output_dir), resuming, log_file, errors)
        except ChildFailedError as ex:
            raise RankFailed(first_cause(Path(errors), ex)) from None
    return outcomes[0]


#: what a rank raises when a peer has died under it (not the cause of a failure)
PEER_GONE = ("Connection reset by peer", "Connection closed by peer", "pair.cc", "NCCL communicator was aborted")


def first_cause(errors: Path, ex: Any) -> str:
    """One line for the rank failure that caused the others (each failing rank wrote its error
    into ``errors``): not a peer gone away if any, then the earliest, then the lowest rank."""
    found = []
    for path in errors.glob("rank-*.error"):
        stamp, _, message = path.read_text().partition("\t")
        rank = int(path.stem.split("-")[1])
        found.append((any(p in message for p in PEER_GONE), float(stamp), rank, message.strip()))
    if found:
        _, _, rank, message = min(found)
        return f"rank {rank} failed: {message.splitlines()[0] if message else 'no message'}"
    rank, failure = ex.get_first_failure()
    return f"rank {rank} failed (exit status {failure.exitcode})"


class RankFailed(RuntimeError):
    """A rank of a data-parallel run failed; every rank was stopped."""


def _worker_logging(rank: int, log_file: str | None) -> None:
    """Rank 0 logs as the command does (console, and the run's ``run.log``); the others only warnings."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if rank != 0:  # the other ranks say only what goes wrong
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter(f"[rank {rank}] %(message)s"))
        stream.setLevel(logging.WARNING)
        root.addHandler(stream)
        root.setLevel(logging.WARNING)
        return
    from mtlrun.report.console import console_handler

    console = console_handler(show_path=False, markup=False)
    console.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(console)
    if log_file:
        file = logging.FileHandler(log_file)
        file.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        root.addHandler(file)
    root.setLevel(logging.INFO)


def worker(cfg: dict[str, Any], output_dir: str, resuming: bool, log_file: str | None, errors: str) -> Any:
    """One rank started by :func:`launch`: train the resolved config into rank 0's folder.

    A configuration error or a divergence is returned (every rank meets it at the same point, so
    every rank returns); anything else raises and the launcher stops the other ranks."""
    from torch.distributed.elastic.multiprocessing.errors import record

    try:
        return record(_worker)(cfg, output_dir, resuming, log_file)
    except BaseException as ex:  # say why, for the launcher to name the rank that caused the failure
        import time

        place = process_env()
        text = f"{type(ex).__name__}: {ex}".replace("\n", " ")
        (Path(errors) / f"rank-{place.rank if place else 0}.error").write_text(f"{time.time()}\t{text}")
        raise


def _worker(cfg: dict[str, Any], output_dir: str, resuming: bool, log_file: str | None) -> Any:
    from omegaconf import OmegaConf

    from mtlrun.train.build import pick_device
    from mtlrun.train.loop import Diverged
    from mtlrun.train.resume import resume_point
    from mtlrun.train.run import run
    from mtlrun.train.signals import Interrupted

    place = process_env()
    _worker_logging(place.rank if place else 0, log_file)
    conf = OmegaConf.create(cfg)
    folder = Path(output_dir)
    try:
        join(pick_device(conf.trainer.device), conf.trainer.data_parallel)
        checkpoint = resume_point(conf, folder, resuming=resuming)  # the launching process found one
        summary, report = run(conf, folder, checkpoint)
    except ConfigError as ex:
        return ("config_error", str(ex), ex.exit_code)
    except Diverged as ex:
        return ("diverged", str(ex), ex.divergence)
    except Interrupted as ex:  # every rank stopped at the same step; rank 0 saved the checkpoint
        return ("interrupted", ex.signum, None)
    finally:
        leave()
    return ("completed", summary, report)

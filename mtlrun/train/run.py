"""One run, end to end: build the components from the config, train, and fill the run folder.

The folder is usable at every moment: ``summary.json`` says ``running`` from the start and is
rewritten with ``completed``, ``diverged``, ``interrupted`` or ``failed`` at the end;
``metrics.jsonl`` and ``checkpoints/last.pt`` are rewritten atomically after every epoch.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from mtlrun.config.schema import check_resolvable, plain
from mtlrun.errors import ConfigError
from mtlrun.loggers import build_logger
from mtlrun.plugins.targets import chosen_name
from mtlrun.results.baseline_cache import BaselineCache
from mtlrun.results.run_folder import BEST_CHECKPOINT, DIAGNOSTICS, LAST_CHECKPOINT, RunFolder, RunIdentity, Summary
from mtlrun.results.transfer_report import TransferReport
from mtlrun.results.versions import __version__
from mtlrun.train import distributed
from mtlrun.train.build import Components, build
from mtlrun.train.callbacks import Callback, Checkpointer, DiagnosticsWriter, RunFolderWriter, Tracking
from mtlrun.train.diagnostics import diagnostics_for_run
from mtlrun.train.loop import Diverged, Trainer
from mtlrun.train.signals import Interrupted, stop_on_signals

log = logging.getLogger("mtlrun")


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import hydra

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mtlrun": __version__,
        "hydra": hydra.__version__,
        "torchmetrics": version("torchmetrics"),  # not imported: it loads at the first evaluation
    }


def git_commit() -> str | None:
    source = Path(__file__).resolve().parents[2]  # the checkout holding the mtlrun package
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run(
    cfg: DictConfig, output_dir: Path, checkpoint: dict[str, Any] | None = None
) -> tuple[Summary, TransferReport | None]:
    """Train one configuration into ``output_dir``; return its summary and its transfer report.

    With ``checkpoint`` (a ``last.pt`` of this run, see :func:`resume_point`) the run continues
    from it in the same folder and ends as the uninterrupted run would have.
    """
    started = time.perf_counter()
    log.info("run folder: %s", output_dir)  # first, so the folder is known even if the run is killed
    check_resolvable(cfg)  # a bad ${...} is one line now, not an error deep inside the run
    folder = RunFolder(output_dir)
    dp = distributed.current()  # data parallel: only rank 0 writes the folder and the trackers
    writer = dp is None or dp.is_writer
    save = folder.write_summary if writer else (lambda summary: None)
    previous = folder.read_summary() if checkpoint is not None else None
    summary = Summary(
        run=RunIdentity(
            dataset=cfg.dataset.get("name") or cfg.dataset.get("_target_"),
            arch=chosen_name(cfg.arch),
            balancer=chosen_name(cfg.balancer),
            encoder=chosen_name(cfg.encoder),
            seed=cfg.seed,
        ),
        versions=versions(),
        git_commit=git_commit(),
    )
    if checkpoint is not None:
        summary.resumed_after = list(previous.resumed_after if previous else [])
        summary.resumed_after.append({"epoch": int(checkpoint["epoch"]), "step": int(checkpoint["step"])})
    save(summary)
    try:
        c = build(cfg)
        if cfg.report.baselines is not False:  # a corrupt cache file is reported now, not after training
            from mtlrun.train.baselines import check_cache

            check_cache(cfg, c.tasks, c.primary, c.encoder, baseline_cache(cfg))
        tracker = build_logger(plain(cfg.get("logger")) if writer else None, output_dir)
    except Exception as ex:
        if previous is not None and isinstance(ex, ConfigError):  # a resume stopped by a mistake: as it was
            folder.write_summary(previous)
            raise
        summary.status, summary.error = "failed", str(ex).splitlines()[0] if str(ex) else type(ex).__name__
        save(summary)
        raise
    if dp is not None:  # batch statistics over the global batch, as in one process
        distributed.check_balancer(c.balancer, chosen_name(cfg.balancer))
        distributed.prepare_model(c.model, c.balancer)
    summary.run.tasks, summary.run.encoder = c.tasks, c.encoder.name
    summary.balancer_uses = {
        "task_gradients": bool(c.balancer.uses_task_gradients),
        "representation": bool(c.balancer.needs_representation),
    }
    summary.encoder = c.encoder.as_dict()
    summary.primary = c.primary
    summary.directions = {t: c.data.tasks[t].metric_directions() for t in c.tasks}
    summary.parameters = c.model.parameter_counts()
    summary.device = str(c.device)
    summary.dataset_info = c.data.info
    save(summary)
    for name, text in c.data.files.items() if writer else ():  # a text dataset's tokenizer.json
        folder.write_text(name, text)
    t = cfg.trainer
    trainer = Trainer.from_config(
        t, c.model, c.balancer, c.data, seed=cfg.seed, device=c.device, primary=c.primary, schedule=c.schedule
    )
    trainer.diagnostics = diagnostics_for_run(
        cfg.get("diagnostics"),
        tasks=c.tasks,
        model=c.model,
        shared=trainer.shared,
        loss_fns={task: c.data.tasks[task].loss for task in c.tasks},
        optimizer=trainer.optimizer,
        path=folder.path(DIAGNOSTICS),
        arch=chosen_name(cfg.arch),
    )
    trainer.session_started = started
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)
        log.info("resuming %s after epoch %d (step %d)", output_dir, trainer.epochs_done, trainer.step)
    if dp is not None:
        distributed.attach(dp, trainer, cfg.seed, t.get("data_parallel", "exact"))
        dp.broadcast_module(c.model)
        log.info("data parallel: %d processes, global batch %d (%s)", dp.world_size, t.batch_size, dp.backend)
    callbacks: list[Callback] = []
    if writer:
        callbacks += [RunFolderWriter(folder, summary), Tracking(tracker, plain(cfg))]
        if trainer.diagnostics is not None:
            callbacks.append(DiagnosticsWriter(trainer.diagnostics))
        callbacks.append(
            Checkpointer(folder.path(LAST_CHECKPOINT), folder.path(BEST_CHECKPOINT), t.checkpoint_every, plain(cfg))
        )
    setup_s = time.perf_counter() - started
    log.info(
        "training %s on %s (%s) with %s, tasks %s, %d parameters, device %s (%d threads)",
        chosen_name(cfg.arch),
        cfg.dataset.get("name") or cfg.dataset.get("_target_"),
        c.encoder.name,
        chosen_name(cfg.balancer),
        ",".join(c.tasks),
        summary.parameters["total"],
        c.device,
        torch.get_num_threads(),
    )
    with stop_on_signals() as stop:
        trainer.should_stop = stop
        try:
            result = trainer.fit(callbacks)
        except Diverged as ex:
            summary.status, summary.error = "diverged", str(ex)
            summary.divergence = ex.divergence or None
            summary.skipped_steps = trainer.nan_guard.skipped
            save(summary)
            raise
        except Interrupted as ex:
            log.warning(
                "run interrupted (%s) after epoch %d; continue it with: mtlrun resume=%s",
                ex,
                trainer.epochs_done,
                output_dir,
            )
            raise
    summary.status = "completed"
    summary.timings = {  # a resumed run's total, training and evaluation time cover all its sessions
        "total_s": round(trainer.wall_seconds(), 3),
        "setup_s": round(setup_s, 3),  # this session's
        "train_s": round(result.train_seconds, 3),
        "eval_s": round(result.eval_seconds, 3),
        "steps": result.steps,
        "steps_per_s": round(result.steps / result.train_seconds, 2) if result.train_seconds else None,
    }
    save(summary)
    if stop() is not None:  # a signal came after the last step: the run is complete, stop before the report
        tracker.close("completed")
        raise Interrupted(stop() or 2)
    if dp is not None:  # plots and the report (its baselines included) are rank 0's, in one process
        distributed.leave()
        if not writer:
            tracker.close("completed")
            return summary, None
    try:  # plots are a convenience: they never fail a run
        from mtlrun.report.plots import plot_run

        plot_run(output_dir)
    except Exception as ex:
        log.warning("could not draw plots: %s: %s", type(ex).__name__, ex)
    report = None
    if cfg.report.baselines is not False:
        try:
            report = negative_transfer_stage(cfg, c, output_dir)
        except (ConfigError, Diverged) as ex:  # a cache file gone bad, a diverged baseline: one line
            log.error("the negative-transfer report failed: %s", ex)
            summary.report_error = str(ex).splitlines()[0]
            save(summary)
        except Exception as ex:  # the run itself completed; a failed report must not hide that
            log.exception("the negative-transfer report failed: %s", ex)
            summary.report_error = f"{type(ex).__name__}: {ex}".splitlines()[0]
            save(summary)
    tracker.close("completed")
    return summary, report


def baseline_cache(cfg: DictConfig) -> BaselineCache:
    """The baseline cache of ``report.cache_dir`` (relative to the launch folder)."""
    return BaselineCache((Path.cwd() / cfg.report.cache_dir).resolve())


def negative_transfer_stage(cfg: DictConfig, c: Components, output_dir: Path) -> TransferReport | None:
    """Make sure the single-task baselines exist (train the missing ones), then write the report."""
    from mtlrun.report.negative_transfer import ReportOptions, build_report
    from mtlrun.train.baselines import resolve_baselines

    launch = Path.cwd()
    cache = baseline_cache(cfg)
    started = time.perf_counter()
    policy = "only_cached" if cfg.report.baselines == "only_cached" else "train"
    records, _, trained = resolve_baselines(
        cfg, c.data, c.tasks, c.primary, c.encoder, c.device, cache, policy, batched=cfg.report.batched
    )
    if not records:  # only_cached and nothing cached: a report of n/a everywhere would answer nothing
        log.warning(
            "report.baselines=only_cached: no single-task baseline of %s is cached in %s, so no report was "
            "written; train them (and get the report) with: %s",
            ", ".join(c.tasks),
            cfg.report.cache_dir,
            training_command(output_dir),
        )
        return None
    report = build_report(output_dir, cache, ReportOptions.from_config(cfg.report, launch))
    seconds = time.perf_counter() - started
    log.info("negative-transfer report written (%d baseline(s) trained, %.1f s)", len(trained), seconds)
    return report


def training_command(output_dir: Path) -> str:
    """This run's command line with ``report.baselines=only_cached`` replaced by training the baselines."""
    from mtlrun.report.grouping import command

    launch = RunFolder(output_dir).read_launch()
    return command(launch, "report.baselines=true", drop=("report.baselines",))

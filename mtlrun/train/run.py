"""One run, end to end: build the components from the config, train, and fill the run folder.

The folder is usable at every moment: ``summary.json`` says ``running`` from the start and is
rewritten with ``completed``, ``diverged``, ``interrupted`` or ``failed`` at the end;
``metrics.jsonl`` and ``checkpoints/last.pt`` are rewritten atomically after every epoch.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

import mtlrun
from mtlrun.balancers import BALANCERS, Balancer
from mtlrun.config import plain, validate
from mtlrun.data import DATASETS, MultiTaskDataset
from mtlrun.errors import ConfigError, choices_error
from mtlrun.loggers import build_logger
from mtlrun.models import ARCHS, EncoderSpec, MultiTaskModel
from mtlrun.outputs import write_json, write_jsonl
from mtlrun.report.diagnostics import diagnostics_for_run
from mtlrun.train.checkpoint import rng_state, save_checkpoint
from mtlrun.train.loop import Diverged, EpochRecord, Trainer, optimizer_for
from mtlrun.train.schedule import SCHEDULES, TaskSchedule

log = logging.getLogger("mtlrun")


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but no CUDA device is available; use trainer.device=cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.device=mps but MPS is not available; use trainer.device=cpu or auto")
    return torch.device(name)


def resolve_tasks(cfg: DictConfig, data: MultiTaskDataset) -> tuple[list[str], dict[str, str]]:
    """The run's task set and each task's primary metric, validated against the dataset."""
    available = list(data.tasks)
    names = list(cfg.tasks.names) if cfg.tasks.names is not None else available
    if not names:
        raise ConfigError(f"tasks.names is empty; choose from: {', '.join(available)}")
    for name in names:
        if name not in data.tasks:
            raise choices_error("tasks.names", name, available)
    if len(set(names)) != len(names):
        raise ConfigError(f"tasks.names={names} lists a task twice")
    overrides = dict(cfg.tasks.primary or {})
    primary = {}
    for task in names:
        chosen = overrides.get(task, data.tasks[task].primary)
        if chosen not in data.tasks[task].metrics:
            raise choices_error(f"tasks.primary.{task}", chosen, list(data.tasks[task].metrics))
        primary[task] = chosen
    for task in overrides:
        if task not in names:
            raise choices_error("tasks.primary", task, names)
    return names, primary


def encoder_spec(cfg: DictConfig, data: MultiTaskDataset) -> EncoderSpec:
    options = {k: v for k, v in plain(cfg.encoder).items() if k != "name"}
    name = cfg.encoder.name
    if name == "auto":
        name, options = data.default_encoder, {}
    options = {**data.encoder_options.get(name, {}), **options}  # data-derived sizes, e.g. vocabularies
    return EncoderSpec(name=name, input_shape=tuple(data.input_shape), options=options)


@dataclass
class Components:
    data: MultiTaskDataset
    tasks: list[str]
    primary: dict[str, str]
    encoder: EncoderSpec
    model: MultiTaskModel
    balancer: Balancer
    device: torch.device
    schedule: TaskSchedule | None = None


def build(cfg: DictConfig) -> Components:
    """Everything a run needs, validated; raises ConfigError on the first bad value."""
    validate(cfg)
    device = pick_device(cfg.trainer.device)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    full = DATASETS.build(cfg.dataset.name, plain(cfg.dataset))
    tasks, primary = resolve_tasks(cfg, full)
    data = full.select(tasks)
    spec = encoder_spec(cfg, data)
    spec.build()  # validates encoder options against the dataset before the model is built
    seed_everything(cfg.seed, cfg.trainer.deterministic)  # model init independent of data building
    model = ARCHS.build(cfg.arch.name, plain(cfg.arch), encoder=spec, tasks=[data.tasks[t] for t in tasks])
    balancer = BALANCERS.build(cfg.balancer.name, plain(cfg.balancer), tasks=tasks)
    if balancer.uses_task_gradients and not balancer.needs_representation and not model.shared_parameters():
        raise ConfigError(
            f"balancer={cfg.balancer.name} combines task gradients on shared parameters, which arch={cfg.arch.name} "
            "does not have; use a loss-weighting balancer (e.g. balancer=ew)"
        )
    if balancer.needs_representation and not model.has_representation:
        raise ConfigError(
            f"balancer={cfg.balancer.name} with rep_grad needs a shared representation, "
            f"which arch={cfg.arch.name} lacks"
        )
    schedule_cfg = plain(cfg.get("schedule")) or {"name": "none"}
    schedule = SCHEDULES.build(schedule_cfg.get("name", "none"), schedule_cfg, tasks=tasks)
    model.to(device)
    balancer.to(device)
    data.train, data.val, data.test = (s.to(device) for s in (data.train, data.val, data.test))
    return Components(data, tasks, primary, spec, model, balancer, device, schedule)


def versions() -> dict[str, str]:
    import hydra
    import torchmetrics

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mtlrun": mtlrun.__version__,
        "hydra": hydra.__version__,
        "torchmetrics": torchmetrics.__version__,
    }


def git_commit() -> str | None:
    source = Path(mtlrun.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class RunFolder:
    """Owns the files of one run folder; every write is atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}

    def add_epoch(self, r: EpochRecord) -> None:
        base = {"epoch": r.epoch, "step": r.step}
        for task, value in r.train_loss.items():
            self.rows.append({**base, "split": "train", "task": task, "metric": "loss", "value": value})
        for task, value in r.weights.items():
            self.rows.append({**base, "split": "train", "task": task, "metric": "weight", "value": value})
        for name, value in r.extra_losses.items():
            self.rows.append({**base, "split": "train", "task": None, "metric": name, "value": value})
        for name, value in r.balancer_extras.items():
            self.rows.append({**base, "split": "train", "task": None, "metric": f"balancer/{name}", "value": value})
        for task, value in r.schedule.items():
            self.rows.append({**base, "split": "train", "task": task, "metric": "schedule", "value": value})
        for task, metrics in r.val.items():
            self.rows.append({**base, "split": "val", "task": task, "metric": "loss", "value": r.val_loss[task]})
            for metric, value in metrics.items():
                self.rows.append({**base, "split": "val", "task": task, "metric": metric, "value": value})
        write_jsonl(self.root / "metrics.jsonl", self.rows)

    def add_test(self, epoch: int, which: str, metrics: dict[str, dict[str, float]]) -> None:
        for task, values in metrics.items():
            for metric, value in values.items():
                self.rows.append(
                    {
                        "epoch": epoch,
                        "split": "test",
                        "checkpoint": which,
                        "task": task,
                        "metric": metric,
                        "value": value,
                    }
                )
        write_jsonl(self.root / "metrics.jsonl", self.rows)

    def write_summary(self, **updates: Any) -> None:
        self.summary.update(updates)
        write_json(self.root / "summary.json", self.summary)


def run(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Train one configuration into ``output_dir``; return the summary."""
    started = time.perf_counter()
    folder = RunFolder(output_dir)
    folder.write_summary(
        status="running",
        run={
            "dataset": cfg.dataset.name,
            "arch": cfg.arch.name,
            "balancer": cfg.balancer.name,
            "encoder": cfg.encoder.name,
            "tasks": None,
            "seed": cfg.seed,
        },
        versions=versions(),
        git_commit=git_commit(),
    )
    try:
        c = build(cfg)
        tracker = build_logger(plain(cfg.get("logger")), output_dir)
    except Exception as ex:
        folder.write_summary(status="failed", error=str(ex).splitlines()[0] if str(ex) else type(ex).__name__)
        raise
    folder.write_summary(
        run={**folder.summary["run"], "tasks": c.tasks, "encoder": c.encoder.name},
        encoder=c.encoder.as_dict(),
        primary=c.primary,
        directions={t: c.data.tasks[t].metric_directions() for t in c.tasks},
        parameters=c.model.parameter_counts(),
        device=str(c.device),
        dataset_info=c.data.info,
    )
    tracker.log_config(plain(cfg))
    t = cfg.trainer
    optimizer = optimizer_for(t, c.model, c.balancer)
    ckpt = output_dir / "checkpoints" / "last.pt"

    def checkpoint(epoch: int, trainer: Trainer) -> None:
        save_checkpoint(
            ckpt,
            model=c.model.state_dict(),
            optimizer=optimizer.state_dict(),
            balancer=c.balancer.state_dict(),
            rng=rng_state(trainer.shuffle),
            epoch=epoch,
            step=trainer.step,
        )

    diagnostics = diagnostics_for_run(
        cfg.get("diagnostics"),
        tasks=c.tasks,
        model=c.model,
        shared=[p for p in c.model.shared_parameters() if p.requires_grad],
        loss_fns={task: c.data.tasks[task].loss for task in c.tasks},
        optimizer=optimizer,
        path=output_dir / "diagnostics.json",
        arch=cfg.arch.name,
    )

    def on_epoch(record: EpochRecord, trainer: Trainer) -> None:
        folder.add_epoch(record)
        tracker.log_epoch(record)
        if diagnostics is not None:
            diagnostics.write()
        folder.write_summary(epochs_completed=record.epoch)
        if t.checkpoint_every and record.epoch % t.checkpoint_every == 0:
            checkpoint(record.epoch, trainer)

    trainer = Trainer(
        c.model,
        c.balancer,
        c.data,
        optimizer=optimizer,
        epochs=t.epochs,
        batch_size=t.batch_size,
        grad_clip=t.grad_clip,
        seed=cfg.seed,
        device=c.device,
        primary=c.primary,
        on_epoch=on_epoch,
        diagnostics=diagnostics,
        schedule=c.schedule,
    )
    setup_s = time.perf_counter() - started
    log.info(
        "training %s on %s (%s) with %s, tasks %s, %d parameters, device %s",
        cfg.arch.name,
        cfg.dataset.name,
        c.encoder.name,
        cfg.balancer.name,
        ",".join(c.tasks),
        folder.summary["parameters"]["total"],
        c.device,
    )
    try:
        result = trainer.fit()
    except Diverged as ex:
        if diagnostics is not None:
            diagnostics.write()
        folder.write_summary(status="diverged", error=str(ex))
        log.error("run diverged: %s", ex)
        tracker.close("diverged")
        return folder.summary
    except KeyboardInterrupt:
        checkpoint(folder.summary.get("epochs_completed", 0), trainer)
        folder.write_summary(status="interrupted")
        tracker.close("interrupted")
        raise
    except Exception:
        tracker.close("failed")
        raise
    if not t.checkpoint_every or t.epochs % t.checkpoint_every:
        checkpoint(t.epochs, trainer)
    last, best = trainer.evaluate_test(result.best_state)
    folder.add_test(t.epochs, "last", last)
    folder.add_test(result.best_epoch, "best", best)
    tracker.log_test("last", t.epochs, last)
    tracker.log_test("best", result.best_epoch, best)
    final_val = result.epochs[-1]
    best_val = next(r for r in result.epochs if r.epoch == result.best_epoch)
    folder.write_summary(
        status="completed",
        metrics={
            "last": {"epoch": t.epochs, "val": final_val.val, "test": last},
            "best": {"epoch": result.best_epoch, "val": best_val.val, "test": best},
        },
        timings={
            "total_s": round(time.perf_counter() - started, 3),
            "setup_s": round(setup_s, 3),
            "train_s": round(result.train_seconds, 3),
            "eval_s": round(result.eval_seconds, 3),
            "steps": result.steps,
            "steps_per_s": round(result.steps / result.train_seconds, 2) if result.train_seconds else None,
        },
    )
    if diagnostics is not None:
        diagnostics.write()
    try:  # plots are a convenience: they never fail a run
        from mtlrun.report.plots import plot_run

        plot_run(output_dir)
    except Exception as ex:
        log.warning("could not draw plots: %s: %s", type(ex).__name__, ex)
    if cfg.report.baselines is not False:
        try:
            negative_transfer_stage(cfg, c, output_dir)
        except Exception as ex:  # the run itself completed; a failed report must not hide that
            log.exception("the negative-transfer report failed: %s", ex)
            folder.write_summary(report_error=f"{type(ex).__name__}: {ex}".splitlines()[0])
    tracker.close("completed")
    return folder.summary


def negative_transfer_stage(cfg: DictConfig, c: Components, output_dir: Path) -> dict[str, Any] | None:
    """Make sure the single-task baselines exist (train the missing ones), then write the report."""
    from mtlrun.report.baselines import BaselineCache, resolve_baselines
    from mtlrun.report.negative_transfer import build_report

    launch = Path.cwd()
    cache = BaselineCache((launch / cfg.report.cache_dir).resolve())
    started = time.perf_counter()
    policy = "only_cached" if cfg.report.baselines == "only_cached" else "train"
    _, _, trained = resolve_baselines(
        cfg, c.data, c.tasks, c.primary, c.encoder, c.device, cache, policy, batched=cfg.report.batched
    )
    roots = [launch / "outputs", launch / "multirun"]
    try:
        roots.insert(0, launch / output_dir.resolve().relative_to(launch).parts[0])
    except ValueError:
        roots.insert(0, output_dir.parent)
    report = build_report(output_dir, cache, list(dict.fromkeys(roots)), cfg.report.alpha, cfg.report.groups)
    seconds = time.perf_counter() - started
    log.info("negative-transfer report written (%d baseline(s) trained, %.1f s)", len(trained), seconds)
    return report


def run_from_hydra(cfg: DictConfig) -> float | None:
    """The Hydra task: run, print the per-task table and the folder, record any failure.

    In a sweep a failing job records ``failed`` in its summary and returns normally, so the
    other jobs and the sweep-end callback still run.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from mtlrun.report.objective import run_score
    from mtlrun.report.tables import print_run_summary

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        summary = run(cfg, output_dir)
    except KeyboardInterrupt:
        raise
    except ConfigError as ex:
        if in_sweep:
            log.error("job failed: %s", ex)
            return None
        print(f"mtlrun: error: {ex}", file=sys.stderr)
        sys.exit(2)
    except Exception as ex:
        summary_path = output_dir / "summary.json"
        folder = RunFolder(output_dir)
        if summary_path.exists():
            import json

            folder.summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if folder.summary.get("status") != "failed":
            folder.write_summary(status="failed", error=f"{type(ex).__name__}: {ex}".splitlines()[0])
        if not in_sweep:
            raise
        log.exception("job failed: %s", ex)
        return None
    print_run_summary(summary, output_dir)
    if (output_dir / "transfer.json").exists():
        import json

        from mtlrun.report.negative_transfer import print_verdicts

        print_verdicts(json.loads((output_dir / "transfer.json").read_text(encoding="utf-8")))
    return run_score(summary)  # for sweepers such as optuna: higher is better

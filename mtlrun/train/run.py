"""One run, end to end: build the components from the config, train, and fill the run folder.

The folder is usable at every moment: ``summary.json`` says ``running`` from the start and is
rewritten with ``completed``, ``diverged``, ``interrupted`` or ``failed`` at the end;
``metrics.jsonl`` and ``checkpoints/last.pt`` are rewritten atomically after every epoch.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

import mtlrun
from mtlrun.balancers import BALANCERS, Balancer
from mtlrun.baseline_cache import BaselineCache
from mtlrun.config import check_resolvable, plain, validate
from mtlrun.data import MultiTaskDataset, build_dataset
from mtlrun.data.loader import loader_options, place_splits
from mtlrun.data.multi_input import is_multi_input
from mtlrun.errors import ConfigError, choices_error
from mtlrun.inert_settings import check_inert
from mtlrun.loggers import build_logger
from mtlrun.models import ARCHS, EncoderSpec, MultiTaskModel
from mtlrun.models.multi_input import prepare_multi_input
from mtlrun.outputs import WriteFailed
from mtlrun.plugins.targets import chosen_name
from mtlrun.resume import RESUMABLE_CHANGES, comparable_config, first_difference
from mtlrun.runfolder import BEST_CHECKPOINT, DIAGNOSTICS, LAST_CHECKPOINT, SUMMARY, RunFolder, RunIdentity, Summary
from mtlrun.train.callbacks import Callback, Checkpointer, DiagnosticsWriter, RunFolderWriter, Tracking
from mtlrun.train.devices import apply_threads, compile_model
from mtlrun.train.diagnostics import diagnostics_for_run
from mtlrun.train.loop import Diverged, Trainer
from mtlrun.train.precision import Precision
from mtlrun.train.schedule import SCHEDULES, TaskSchedule
from mtlrun.train.seeding import seed_everything
from mtlrun.train.signals import Interrupted, stop_on_signals

log = logging.getLogger("mtlrun")

#: exit status of a single run that diverged (2 is a configuration error, 1 any other failure)
DIVERGED_EXIT = 3


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


def parallel_jobs() -> int | None:
    """How many jobs the sweep this run belongs to runs at once (joblib's ``n_jobs``), if any."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):
        return None
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    launcher = getattr(hydra_cfg, "launcher", None)
    jobs = launcher.get("n_jobs") if launcher is not None else None
    return int(jobs) if isinstance(jobs, int) else None


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


def check_objective(objective: str, data: MultiTaskDataset, tasks: list[str]) -> None:
    """``objective`` is ``primary_mean`` or a ``TASK/METRIC`` of the run's task set."""
    from mtlrun.objective import PRIMARY_MEAN

    valid = [PRIMARY_MEAN] + [f"{t}/{m}" for t in tasks for m in data.tasks[t].metrics]
    if objective not in valid:
        raise choices_error("objective", objective, valid)


def balancer_options(cfg: DictConfig) -> dict[str, Any]:
    """The balancer's options, with ``tasks.weights`` as the weights of a balancer that takes them."""
    import inspect

    options = plain(cfg.balancer)
    if cfg.tasks.weights is not None:
        factory = BALANCERS.get(chosen_name(cfg.balancer))
        if "weights" not in inspect.signature(factory).parameters:
            takes = [n for n in BALANCERS.names() if "weights" in inspect.signature(BALANCERS.get(n)).parameters]
            raise ConfigError(
                f"tasks.weights is set but balancer={chosen_name(cfg.balancer)} does not use static task weights; "
                f"use balancer={' or balancer='.join(takes)}, or drop tasks.weights"
            )
        options["weights"] = plain(cfg.tasks.weights)
    return options


def encoder_spec(cfg: DictConfig, data: MultiTaskDataset) -> EncoderSpec:
    options = {k: v for k, v in plain(cfg.encoder).items() if k != "name" and not k.startswith("_")}
    name = chosen_name(cfg.encoder)  # a registered name, an installed plugin's, or an import path
    if name == "auto":
        name, options = data.default_encoder, {}
    context = data.encoder_context.get(name, {})
    return EncoderSpec(name=name, input_shape=tuple(data.input_shape), options=options, context=context)


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
    check_inert(cfg)  # after the range checks, so a bad value is named as bad rather than as inert
    device = pick_device(cfg.trainer.device)
    apply_threads(cfg.trainer.threads, parallel_jobs())
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    full = build_dataset(plain(cfg.dataset))
    tasks, primary = resolve_tasks(cfg, full)
    check_objective(cfg.objective, full, tasks)
    data = full.select(tasks)
    spec = encoder_spec(cfg, data)
    spec.build()  # validates encoder options against the dataset before the model is built
    seed_everything(cfg.seed, cfg.trainer.deterministic)  # model init independent of data building
    arch = chosen_name(cfg.arch)
    model = ARCHS.build(arch, plain(cfg.arch), encoder=spec, tasks=[data.tasks[t] for t in tasks])
    prepare_multi_input(model, data, arch)  # one input per task: check the arch, add input adapters
    balancer = BALANCERS.build(chosen_name(cfg.balancer), balancer_options(cfg), tasks=tasks)
    if balancer.uses_task_gradients and not balancer.needs_representation and not model.shared_parameters():
        raise ConfigError(
            f"balancer={chosen_name(cfg.balancer)} combines task gradients on shared parameters, which arch={arch} "
            "does not have; use a loss-weighting balancer (e.g. balancer=ew)"
        )
    if balancer.needs_representation and is_multi_input(data):
        raise ConfigError(
            f"balancer={chosen_name(cfg.balancer)} with rep_grad needs one representation of common inputs, "
            "but this dataset gives each task its own inputs"
        )
    if balancer.needs_representation and not model.has_representation:
        raise ConfigError(
            f"balancer={chosen_name(cfg.balancer)} with rep_grad needs a shared representation, which arch={arch} lacks"
        )
    Precision(cfg.trainer.precision, device).check(balancer, chosen_name(cfg.balancer))
    schedule_cfg = plain(cfg.get("schedule")) or {"name": "none"}
    schedule = SCHEDULES.build(
        schedule_cfg.get("name", "none"), schedule_cfg, tasks=tasks, epochs=int(cfg.trainer.epochs)
    )
    model.to(device)
    balancer.to(device)
    if cfg.trainer.compile:
        compile_model(model)
    data.info = {**data.info, "loader": place_splits(data, *loader_options(plain(cfg.get("loader"))), device)}
    if data.info["loader"] == "memory" and cfg.get("loader") is not None:
        from mtlrun.inert_settings import inert_loader_settings

        for message in inert_loader_settings(cfg.loader, "loader.mode=auto, which keeps this data in memory"):
            raise ConfigError(message)
    data.train, data.val, data.test = (s.to(device) for s in (data.train, data.val, data.test))
    return Components(data, tasks, primary, spec, model, balancer, device, schedule)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import hydra

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mtlrun": mtlrun.__version__,
        "hydra": hydra.__version__,
        "torchmetrics": version("torchmetrics"),  # not imported: it loads at the first evaluation
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


def resume_point(cfg: DictConfig, output_dir: Path, in_sweep: bool = False) -> dict[str, Any] | None:
    """The checkpoint a run continues from, checked against ``cfg``; None when the run starts from
    the beginning: ``resume`` is not set, or the folder has no checkpoint yet.

    A sweep's job continues from its own checkpoint even without ``resume``: its folder is new to
    every fresh sweep (the folder guard), so a checkpoint there is from an earlier attempt of this
    very job, such as a SLURM job pre-empted and requeued by submitit.
    """
    folder = RunFolder(output_dir)
    path = folder.path(LAST_CHECKPOINT)
    if cfg.get("resume") is None and not (in_sweep and path.is_file()):
        return None
    from mtlrun.train.checkpoint import load_checkpoint

    for stale in path.parent.glob(".*.pt.*.tmp"):  # a write cut short by a kill
        stale.unlink(missing_ok=True)
    if not path.is_file():
        log.info("%s has no checkpoint yet: training from the start", output_dir)
        return None
    state = load_checkpoint(path)  # a damaged or foreign file: one CheckpointError line naming it
    if not isinstance(state.get("config"), dict) or "records" not in state:
        raise ConfigError(f"cannot resume from {path}: it is not a checkpoint of a resumable mtlrun run")
    changed = first_difference(comparable_config(state["config"]), comparable_config(plain(cfg)))
    if changed is not None:
        raise ConfigError(
            f"cannot resume {output_dir}: its config differs in '{changed}' from the one composed now; "
            f"only {' and '.join(RESUMABLE_CHANGES)} may change on a resume"
        )
    if int(state["epoch"]) > cfg.trainer.epochs:
        raise ConfigError(
            f"trainer.epochs={cfg.trainer.epochs} is fewer than the {state['epoch']} epochs {output_dir} has "
            "trained already; give at least that many"
        )
    return state


def run(
    cfg: DictConfig, output_dir: Path, checkpoint: dict[str, Any] | None = None
) -> tuple[Summary, dict[str, Any] | None]:
    """Train one configuration into ``output_dir``; return its summary and its transfer report.

    With ``checkpoint`` (a ``last.pt`` of this run, see :func:`resume_point`) the run continues
    from it in the same folder and ends as the uninterrupted run would have.
    """
    started = time.perf_counter()
    check_resolvable(cfg)  # a bad ${...} is one line now, not an error deep inside the run
    folder = RunFolder(output_dir)
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
    folder.write_summary(summary)
    try:
        c = build(cfg)
        if cfg.report.baselines is not False:  # a corrupt cache file is reported now, not after training
            from mtlrun.train.baselines import check_cache

            check_cache(cfg, c.tasks, c.primary, c.encoder, baseline_cache(cfg))
        tracker = build_logger(plain(cfg.get("logger")), output_dir)
    except Exception as ex:
        summary.status, summary.error = "failed", str(ex).splitlines()[0] if str(ex) else type(ex).__name__
        folder.write_summary(summary)
        raise
    summary.run.tasks, summary.run.encoder = c.tasks, c.encoder.name
    summary.encoder = c.encoder.as_dict()
    summary.primary = c.primary
    summary.directions = {t: c.data.tasks[t].metric_directions() for t in c.tasks}
    summary.parameters = c.model.parameter_counts()
    summary.device = str(c.device)
    summary.dataset_info = c.data.info
    folder.write_summary(summary)
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
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)
        log.info("resuming %s after epoch %d (step %d)", output_dir, trainer.epochs_done, trainer.step)
    callbacks: list[Callback] = [RunFolderWriter(folder, summary), Tracking(tracker, plain(cfg))]
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
            folder.write_summary(summary)
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
    summary.timings = {
        "total_s": round(time.perf_counter() - started, 3),
        "setup_s": round(setup_s, 3),
        "train_s": round(result.train_seconds, 3),
        "eval_s": round(result.eval_seconds, 3),
        "steps": result.steps,
        "steps_per_s": round(result.steps / result.train_seconds, 2) if result.train_seconds else None,
    }
    folder.write_summary(summary)
    if stop() is not None:  # a signal came after the last step: the run is complete, stop before the report
        tracker.close("completed")
        raise Interrupted(stop() or 2)
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
            folder.write_summary(summary)
        except Exception as ex:  # the run itself completed; a failed report must not hide that
            log.exception("the negative-transfer report failed: %s", ex)
            summary.report_error = f"{type(ex).__name__}: {ex}".splitlines()[0]
            folder.write_summary(summary)
    tracker.close("completed")
    return summary, report


def baseline_cache(cfg: DictConfig) -> BaselineCache:
    """The baseline cache of ``report.cache_dir`` (relative to the launch folder)."""
    return BaselineCache((Path.cwd() / cfg.report.cache_dir).resolve())


def negative_transfer_stage(cfg: DictConfig, c: Components, output_dir: Path) -> dict[str, Any] | None:
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
            training_command(),
        )
        return None
    report = build_report(output_dir, cache, ReportOptions.from_config(cfg.report, launch))
    seconds = time.perf_counter() - started
    log.info("negative-transfer report written (%d baseline(s) trained, %.1f s)", len(trained), seconds)
    return report


def training_command() -> str:
    """This run's command line with ``report.baselines=only_cached`` replaced by training the baselines."""
    import shlex

    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # not under Hydra (a test calling run() directly)
        overrides = []
    kept = [o for o in overrides if not o.lstrip("+~").startswith("report.baselines=")]
    return " ".join(["mtlrun", *(shlex.quote(o) for o in kept), "report.baselines=true"])


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


def run_from_hydra(cfg: DictConfig) -> float | None:
    """The Hydra task: run, print the per-task table and the folder, record any failure.

    In a sweep a failing job records ``failed`` in its summary and returns normally, so the
    other jobs and the sweep-end callback still run.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from mtlrun.objective import run_objective
    from mtlrun.report.tables import print_run_summary

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        checkpoint = resume_point(cfg, output_dir, in_sweep)
        done = already_completed(output_dir, checkpoint, cfg.trainer.epochs)
        if done is not None:
            log.info("%s has %s already: nothing to resume", output_dir, done.status)
            print_run_summary(done, output_dir)
            return run_objective(done, cfg.objective)
        summary, report = run(cfg, output_dir, checkpoint)
    except KeyboardInterrupt:
        raise
    except Diverged as ex:
        kept = "the last good checkpoint is kept" if (output_dir / LAST_CHECKPOINT).is_file() else "no checkpoint"
        if in_sweep:  # a result, not a failure: the other jobs go on and the sweep summary lists it
            log.error("run diverged: %s (%s)", ex, output_dir)
            return None
        print(
            f"mtlrun: run diverged: {ex}; {kept} ({output_dir / SUMMARY}); "
            "try a lower trainer.lr, trainer.grad_clip or trainer.on_nan=skip",
            file=sys.stderr,
        )
        sys.exit(DIVERGED_EXIT)
    except ConfigError as ex:
        if in_sweep:
            log.error("job failed: %s", ex)
            return None
        from mtlrun.folder_guard import release_if_created

        release_if_created(output_dir, stop_at=Path(hydra_cfg.runtime.cwd))  # a bad option leaves no folder
        print(f"mtlrun: error: {ex}", file=sys.stderr)
        sys.exit(2)
    except Exception as ex:
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
    print_run_summary(summary, output_dir)
    if report is not None:
        from mtlrun.report.negative_transfer import print_verdicts

        print_verdicts(report)
    return run_objective(summary, cfg.objective)  # for sweepers such as optuna: higher is better

"""Building a run's components from its config: dataset, task set, encoder, model, balancer, schedule,
device, each validated so that the first bad value is one ConfigError naming its key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from mtlrun.balancers import BALANCERS, Balancer
from mtlrun.config.inert import check_inert
from mtlrun.config.schema import plain, validate
from mtlrun.data import MultiTaskDataset, build_dataset
from mtlrun.data.evaluable import check_evaluable
from mtlrun.data.loader import loader_options, place_splits
from mtlrun.data.multi_input import is_multi_input
from mtlrun.errors import ConfigError, choices_error
from mtlrun.models import ARCHS, EncoderSpec, MultiTaskModel
from mtlrun.models.multi_input import prepare_multi_input
from mtlrun.models.text import text_context
from mtlrun.plugins.targets import chosen_name
from mtlrun.train.devices import apply_threads, compile_model
from mtlrun.train.distributed import device_for, process_env
from mtlrun.train.precision import Precision
from mtlrun.train.schedule import SCHEDULES, TaskSchedule
from mtlrun.train.seeding import seed_everything


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
    from mtlrun.results.objective import PRIMARY_MEAN

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
    name = chosen_name(cfg.encoder)
    if name == "auto":
        name, options = data.default_encoder, {}
    text = text_context(name, chosen_name(cfg.arch), data)  # text encoders on text datasets only, and back
    context = text if text is not None else data.encoder_context.get(name, {})
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
    place = process_env()
    jobs = parallel_jobs()
    if place is not None:  # one process per device: its own GPU, its share of the cores
        device = device_for(place, device)
        jobs = (jobs or 1) * place.local_world_size
    apply_threads(cfg.trainer.threads, jobs)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    full = build_dataset(plain(cfg.dataset))
    tasks, primary = resolve_tasks(cfg, full)
    check_objective(cfg.objective, full, tasks)
    data = full.select(tasks)
    check_evaluable(data)  # a metric undefined on the val or test split: refused now, not at the first evaluation
    spec = encoder_spec(cfg, data)
    spec.build()  # validates encoder options against the dataset before the model is built
    seed_everything(cfg.seed, cfg.trainer.deterministic)  # model init independent of data building
    model = ARCHS.build(chosen_name(cfg.arch), plain(cfg.arch), encoder=spec, tasks=[data.tasks[t] for t in tasks])
    prepare_multi_input(model, data, chosen_name(cfg.arch))  # one input per task: check the arch, add input adapters
    model.check_epochs(int(cfg.trainer.epochs))
    balancer = BALANCERS.build(chosen_name(cfg.balancer), balancer_options(cfg), tasks=tasks)
    if balancer.uses_task_gradients and not balancer.needs_representation and not model.shared_parameters():
        raise ConfigError(
            f"balancer={chosen_name(cfg.balancer)} combines task gradients on shared parameters, "
            f"which arch={chosen_name(cfg.arch)} "
            "does not have; use a loss-weighting balancer (e.g. balancer=ew)"
        )
    if balancer.needs_representation and is_multi_input(data):
        raise ConfigError(
            f"balancer={chosen_name(cfg.balancer)} with rep_grad needs one representation of common inputs, "
            "but this dataset gives each task its own inputs"
        )
    if balancer.needs_representation and not model.has_representation:
        raise ConfigError(
            f"balancer={chosen_name(cfg.balancer)} with rep_grad needs a shared representation, "
            f"which arch={chosen_name(cfg.arch)} lacks"
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
        from mtlrun.config.inert import inert_loader_settings

        for message in inert_loader_settings(cfg.loader, "loader.mode=auto, which keeps this data in memory"):
            raise ConfigError(message)
    data.train, data.val, data.test = (s.to(device) for s in (data.train, data.val, data.test))
    return Components(data, tasks, primary, spec, model, balancer, device, schedule)

"""The structured config schema (Hydra's ConfigStore) and the checks Hydra cannot express.

Kept free of torch so that ``mtlrun --help``, ``--cfg`` and tab completion start fast. Typed
fields (``trainer.lr``, ``trainer.epochs``, ...) are checked by Hydra while composing; ranges and
cross-field rules by :func:`validate`, which raises one-line :class:`ConfigError` s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from mtlrun.errors import ConfigError, choices_error

OPTIMIZERS = ("adam", "adamw", "sgd")
ON_NAN = ("stop", "skip")
DEVICES = ("auto", "cpu", "cuda", "mps")
#: ``trainer.precision`` (mtlrun.train.precision) and ``trainer.scheduler`` (mtlrun.train.lr_schedule)
PRECISIONS = ("32", "bf16", "16")
SCHEDULERS = ("none", "cosine", "warmup_cosine", "step", "plateau")


@dataclass
class EarlyStoppingConf:
    #: epochs without a better validation score before training stops; 0 = off
    patience: int = 0


#: ``report.correction`` (mtlrun.report.stats) and ``report.pool`` (mtlrun.report.pooling)
CORRECTIONS = ("holm", "none")
POOL_MODES = ("sweep", "folder", "none")


@dataclass
class TrainerConf:
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    grad_clip: float = 0.0
    device: str = "auto"
    devices: int = 1  # data parallel: processes (one per device) per node, same update as one process
    nodes: int = 1  # data parallel across nodes (started by srun or torchrun on each node)
    data_parallel: str = "exact"  # exact | average_weights (gradient methods: per-rank weights averaged, approximate)
    checkpoint_every: int = 1
    deterministic: bool = True
    on_nan: str = "stop"  # stop | skip: what a NaN/inf loss or gradient does (mtlrun.train.nan_guard)
    max_nan_skips: int = 10  # with on_nan=skip: the run stops as diverged after this many skipped steps
    precision: str = "32"  # 32 | bf16 | 16 (autocast; 16 adds a gradient scaler)
    compile: bool = False  # torch.compile of the model's submodules
    threads: str = "auto"  # torch intra-op threads: auto (cores / parallel sweep jobs) | N
    scheduler: str = "none"  # none | cosine | warmup_cosine | step | plateau
    warmup_epochs: int = 0  # warmup_cosine: epochs of linear warm-up
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step, plateau: decay factor
    min_lr: float = 0.0  # cosine, warmup_cosine, plateau: the lowest learning rate
    plateau_patience: int = 5  # plateau: epochs without improvement before a decay
    early_stopping: EarlyStoppingConf = field(default_factory=EarlyStoppingConf)


@dataclass
class TasksConf:
    names: Optional[List[str]] = None
    # whole mappings, replaced not merged: tasks.weights={left:2,sum:0.1}
    weights: Any = None
    primary: Any = None


@dataclass
class DiagnosticsConf:
    every: int = 50
    affinity: bool = True


@dataclass
class ReportConf:
    baselines: Any = True  # true | false | only_cached
    cache_dir: str = "outputs/baselines"
    alpha: float = 0.05
    groups: int = 2
    batched: str = "auto"  # auto | grouped | separate
    correction: str = "holm"  # holm | none: multiple-testing correction across the run's tasks
    min_seeds: int = 3  # seeds needed on each side (MTL and STL) for a verdict
    pool: str = "sweep"  # sweep | folder | none: which runs are pooled as seeds
    pool_from: List[str] = field(default_factory=list)  # more folders to pool seeds from


@dataclass
class LoaderConf:
    """How splits reach the model: in memory (tensor slicing) or through a ``torch.utils.data.DataLoader``."""

    mode: str = "auto"  # auto (memory where the data fits) | memory | dataloader
    num_workers: int = 2
    pin_memory: bool = True  # only used when training on CUDA
    persistent_workers: bool = True
    prefetch_factor: int = 2


LOADER_MODES = ("auto", "memory", "dataloader")


@dataclass
class RunOptions:
    #: replace a run already in the run folder: the old folder is moved aside (renamed), never deleted
    overwrite: bool = False


@dataclass
class RunConf:
    seed: int = 0
    run: RunOptions = field(default_factory=RunOptions)
    #: a run (or sweep) folder to continue in place: ``mtlrun resume=FOLDER`` (see ``mtlrun.cli.resume``)
    resume: Optional[str] = None
    #: what a run returns to a sweeper (optuna): primary_mean, or TASK/METRIC (validation, best epoch)
    objective: str = "primary_mean"
    # polymorphic groups: each choice's typed node comes from its YAML's schema/<group>/<choice>
    dataset: Any = None
    encoder: Any = None
    arch: Any = None
    balancer: Any = None
    schedule: Any = None
    logger: Any = None
    trainer: TrainerConf = field(default_factory=TrainerConf)
    tasks: TasksConf = field(default_factory=TasksConf)
    diagnostics: DiagnosticsConf = field(default_factory=DiagnosticsConf)
    report: ReportConf = field(default_factory=ReportConf)
    loader: LoaderConf = field(default_factory=LoaderConf)


def register_schema() -> None:
    """The run's schema, and one typed node per group choice (``schema/<group>/<choice>``) that
    the choice's YAML builds on, so Hydra type-checks ``balancer.c=abc`` while composing."""
    from mtlrun.config.options import OPTIONS
    from mtlrun.plugins.choices import register_empty_targets

    store = ConfigStore.instance()
    store.store(name="mtlrun_schema", node=RunConf)
    for (group, choice), node in OPTIONS.items():
        store.store(group=f"schema/{group}", name=choice, node=node)
    register_empty_targets(store)  # the `python` choices, typed from a class when `_target_` names one


def builtin_choice(group: str, choice: str) -> bool:
    """Whether ``choice`` is one of mtlrun's own for ``group`` (not a user's component)."""
    from mtlrun.config.generate import EXTRA_CHOICES
    from mtlrun.config.options import OPTIONS

    return (group, choice) in OPTIONS or choice in EXTRA_CHOICES.get(group, ())


def reject_added_keys(cfg: DictConfig) -> None:
    """A ``+key=value`` override gets past Hydra's struct check even on a typed node; a key that no
    schema declares would be silently ignored, so it is an error (``+trainer.amp=true``)."""
    from dataclasses import fields, is_dataclass

    from mtlrun.config.options import OPTIONS

    def check(node: Any, schema: Any, prefix: str) -> None:
        declared = {f.name: f for f in fields(schema)}
        for key in node.keys() if isinstance(node, DictConfig) else ():
            if key not in declared and not str(key).startswith("_"):  # _target_ of a Python dataset
                raise ConfigError(f"unknown key '{prefix}{key}'; valid keys: {', '.join(sorted(declared))}")
            if key not in declared:
                continue
            inner = declared[key].default_factory if callable(declared[key].default_factory) else None
            if inner is not None and is_dataclass(inner):
                check(node[key], inner, f"{prefix}{key}.")

    check(cfg, RunConf, "")
    for group in ("dataset", "encoder", "arch", "balancer", "schedule", "logger"):
        node = cfg.get(group)
        schema = OPTIONS.get((group, str(node.get("name")))) if isinstance(node, DictConfig) else None
        if schema is not None:
            check(node, schema, f"{group}.")


def check_resolvable(cfg: DictConfig) -> None:
    """Every ``${...}`` of the composed config resolves; else one line naming the key and the reference
    (``trainer.lr=${nope}``), before anything reads the config."""
    from omegaconf import ListConfig, OmegaConf
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    def walk(node: Any, prefix: str) -> None:
        keys = list(node.keys()) if isinstance(node, DictConfig) else list(range(len(node)))
        for key in keys:
            name = f"{prefix}.{key}" if isinstance(node, DictConfig) and prefix else f"{key}"
            if isinstance(node, ListConfig):
                name = f"{prefix}[{key}]"
            try:
                value = node[key]
            except InterpolationResolutionError as ex:
                raw = node._get_node(key)._value()  # the ${...} as written
                reason = str(ex).splitlines()[0]
                raise ConfigError(f"{name}={raw} cannot be resolved: {reason}") from None
            except MissingMandatoryValue:  # a required option without a value: validate names it
                continue
            if OmegaConf.is_config(value):
                walk(value, name)

    walk(cfg, "")


#: how gradient methods combine the ranks' Jacobians (mtlrun.train.distributed)
DATA_PARALLEL = ("exact", "average_weights")


def validate(cfg: DictConfig) -> None:
    """Range and choice checks on the composed config (types are already checked by Hydra)."""
    from omegaconf import OmegaConf

    from mtlrun.plugins.checks import check_components

    reject_added_keys(cfg)
    check_components(cfg, builtin_choice)  # the user's own components, if any
    for key in OmegaConf.missing_keys(cfg):
        raise ConfigError(f"{key} is required and has no value; set {key}=VALUE")
    for key in ("weights", "primary"):
        value = cfg.tasks[key]
        if value is not None and not isinstance(value, DictConfig):
            raise ConfigError(f"tasks.{key}={value} must be a mapping of task names, e.g. tasks.{key}={{left:...}}")
    r = cfg.report
    if r.baselines not in (True, False, "only_cached"):
        raise choices_error("report.baselines", r.baselines, ["true", "false", "only_cached"])
    if not 0 < r.alpha < 1:
        raise ConfigError(f"report.alpha={r.alpha} must lie in (0, 1)")
    if r.groups < 1:
        raise ConfigError(f"report.groups={r.groups} must be >= 1")
    if r.batched not in ("auto", "grouped", "separate"):
        raise choices_error("report.batched", r.batched, ["auto", "grouped", "separate"])
    if r.correction not in CORRECTIONS:
        raise choices_error("report.correction", r.correction, CORRECTIONS)
    if r.min_seeds < 2:
        raise ConfigError(f"report.min_seeds={r.min_seeds} must be >= 2 (a test needs two seeds on each side)")
    if r.pool not in POOL_MODES:
        raise choices_error("report.pool", r.pool, POOL_MODES)
    cache_dir = Path(str(r.cache_dir))
    if r.baselines is not False and cache_dir.exists() and not cache_dir.is_dir():
        raise ConfigError(f"report.cache_dir={r.cache_dir} is a file, not a folder; choose another report.cache_dir")
    for folder in r.pool_from or []:
        if not Path(str(folder)).is_dir():  # relative to the launch folder, like report.cache_dir
            raise ConfigError(f"report.pool_from: no such folder '{folder}' (paths are relative to the launch folder)")
    t = cfg.trainer
    for key in ("lr", "weight_decay", "momentum", "grad_clip"):
        if not math.isfinite(t[key]):
            raise ConfigError(f"trainer.{key}={t[key]} must be a finite number")
    if t.epochs < 1:
        raise ConfigError(f"trainer.epochs={t.epochs} must be >= 1")
    if t.batch_size < 1:
        raise ConfigError(f"trainer.batch_size={t.batch_size} must be >= 1")
    if not t.lr > 0:
        raise ConfigError(f"trainer.lr={t.lr} must be > 0")
    for key in ("weight_decay", "grad_clip", "momentum"):
        if t[key] < 0:
            raise ConfigError(f"trainer.{key}={t[key]} must be >= 0")
    if t.checkpoint_every < 0:
        raise ConfigError(f"trainer.checkpoint_every={t.checkpoint_every} must be >= 0 (0 = only at the end)")
    if t.on_nan not in ON_NAN:
        raise choices_error("trainer.on_nan", t.on_nan, ON_NAN)
    if t.max_nan_skips < 1:
        raise ConfigError(f"trainer.max_nan_skips={t.max_nan_skips} must be >= 1")
    if t.optimizer not in OPTIMIZERS:
        raise choices_error("trainer.optimizer", t.optimizer, OPTIMIZERS)
    if t.device not in DEVICES and not str(t.device).startswith("cuda:"):
        raise choices_error("trainer.device", t.device, DEVICES)
    validate_trainer_extras(t)
    loader = cfg.get("loader")
    if loader is not None:
        if loader.mode not in LOADER_MODES:
            raise choices_error("loader.mode", loader.mode, LOADER_MODES)
        if loader.num_workers < 0:
            raise ConfigError(f"loader.num_workers={loader.num_workers} must be >= 0 (0 = read in the main process)")
        if loader.prefetch_factor < 1:
            raise ConfigError(f"loader.prefetch_factor={loader.prefetch_factor} must be >= 1")
    diagnostics = cfg.get("diagnostics")
    if diagnostics is not None and diagnostics.every < 0:
        raise ConfigError(f"diagnostics.every={diagnostics.every} must be >= 0 (0 = off)")


def validate_trainer_extras(t: Any) -> None:
    """Precision, threads, learning-rate schedule and early stopping of a ``trainer`` node."""
    if str(t.precision) not in PRECISIONS:
        raise choices_error("trainer.precision", t.precision, PRECISIONS)
    threads = str(t.threads)
    if threads != "auto" and not (threads.isdigit() and int(threads) >= 1):
        raise ConfigError(f"trainer.threads={threads} must be auto or a number of threads >= 1")
    if t.scheduler not in SCHEDULERS:
        raise choices_error("trainer.scheduler", t.scheduler, SCHEDULERS)
    for key in ("devices", "nodes"):
        if int(t.get(key, 1)) < 1:
            raise ConfigError(f"trainer.{key}={t.get(key)} must be >= 1")
    if t.get("data_parallel", "exact") not in DATA_PARALLEL:
        raise choices_error("trainer.data_parallel", t.data_parallel, DATA_PARALLEL)
    if t.warmup_epochs < 0:
        raise ConfigError(f"trainer.warmup_epochs={t.warmup_epochs} must be >= 0")
    if t.scheduler == "warmup_cosine" and t.warmup_epochs >= t.epochs:
        raise ConfigError(
            f"trainer.warmup_epochs={t.warmup_epochs} must be < trainer.epochs={t.epochs} "
            "(the cosine part needs at least one epoch)"
        )
    if t.step_size < 1:
        raise ConfigError(f"trainer.step_size={t.step_size} must be >= 1 (epochs between decays)")
    if not 0 < t.gamma <= 1:
        raise ConfigError(f"trainer.gamma={t.gamma} must lie in (0, 1]")
    if t.min_lr < 0:
        raise ConfigError(f"trainer.min_lr={t.min_lr} must be >= 0")
    if t.plateau_patience < 0:
        raise ConfigError(f"trainer.plateau_patience={t.plateau_patience} must be >= 0")
    if t.early_stopping.patience < 0:
        raise ConfigError(f"trainer.early_stopping.patience={t.early_stopping.patience} must be >= 0 (0 = off)")


def plain(node: Any) -> Any:
    """A resolved, plain-Python copy of a config node (dicts, lists, scalars)."""
    from omegaconf import OmegaConf

    if isinstance(node, DictConfig) or OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node

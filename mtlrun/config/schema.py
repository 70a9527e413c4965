"""The structured config schema (Hydra's ConfigStore) and the checks Hydra cannot express.

Kept free of torch so that ``mtlrun --help``, ``--cfg`` and tab completion start fast. Typed
fields (``trainer.lr``, ``trainer.epochs``, ...) are checked by Hydra while composing; ranges and
cross-field rules by :func:`validate`, which raises one-line :class:`ConfigError` s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from mtlrun.config.ranges import Range, bounded, ranges_of
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
    patience: int = bounded(0, ge=0, note="0 = off")


#: ``report.correction`` (mtlrun.report.stats) and ``report.pool`` (mtlrun.report.pooling)
CORRECTIONS = ("holm", "none")
POOL_MODES = ("sweep", "folder", "none")


@dataclass
class TrainerConf:
    epochs: int = bounded(20, ge=1)
    batch_size: int = bounded(128, ge=1)
    optimizer: str = "adam"
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    momentum: float = bounded(0.9, ge=0)  # sgd's (torch.optim.SGD takes any momentum >= 0)
    grad_clip: float = bounded(0.0, ge=0, note="0 = off")
    device: str = "auto"
    devices: int = bounded(1, ge=1)  # data parallel: processes (one per device) per node, same update as one process
    nodes: int = bounded(1, ge=1)  # data parallel across nodes (started by srun or torchrun on each node)
    data_parallel: str = "exact"  # exact | average_weights (gradient methods: per-rank weights averaged, approximate)
    checkpoint_every: int = bounded(1, ge=0, note="0 = only at the end")
    deterministic: bool = True
    on_nan: str = "stop"  # stop | skip: what a NaN/inf loss or gradient does (mtlrun.train.nan_guard)
    max_nan_skips: int = bounded(10, ge=1)  # with on_nan=skip: the run stops as diverged after this many skipped steps
    precision: str = "32"  # 32 | bf16 | 16 (autocast; 16 adds a gradient scaler)
    compile: bool = False  # torch.compile of the model's submodules
    threads: str = "auto"  # torch intra-op threads: auto (cores / parallel sweep jobs) | N
    scheduler: str = "none"  # none | cosine | warmup_cosine | step | plateau
    warmup_epochs: int = bounded(0, ge=0)  # warmup_cosine: epochs of linear warm-up
    step_size: int = bounded(10, ge=1, note="epochs between decays")  # step: epochs between decays
    gamma: float = bounded(0.1, gt=0, le=1)  # step, plateau: decay factor
    min_lr: float = bounded(0.0, ge=0)  # cosine, warmup_cosine, plateau: the lowest learning rate
    plateau_patience: int = bounded(5, ge=0)  # plateau: epochs without improvement before a decay
    early_stopping: EarlyStoppingConf = field(default_factory=EarlyStoppingConf)


@dataclass
class TasksConf:
    names: Optional[List[str]] = None
    # whole mappings, replaced not merged: tasks.weights={left:2,sum:0.1}
    weights: Any = None
    primary: Any = None


@dataclass
class DiagnosticsConf:
    every: int = bounded(50, ge=0, note="0 = off")  # training steps between samples
    affinity: bool = True


@dataclass
class ReportConf:
    baselines: Any = True  # true | false | only_cached
    cache_dir: str = "outputs/baselines"
    alpha: float = bounded(0.05, gt=0, lt=1)  # the significance level of the per-task tests
    groups: int = bounded(2, ge=1)
    batched: str = "auto"  # auto | grouped | separate
    correction: str = "holm"  # holm | none: multiple-testing correction across the run's tasks
    #: seeds needed on each side (MTL and STL) for a verdict
    min_seeds: int = bounded(3, ge=2, note="a test needs two seeds on each side")
    pool: str = "sweep"  # sweep | folder | none: which runs are pooled as seeds
    pool_from: List[str] = field(default_factory=list)  # more folders to pool seeds from


@dataclass
class LoaderConf:
    """How splits reach the model: in memory (tensor slicing) or through a ``torch.utils.data.DataLoader``."""

    mode: str = "auto"  # auto (memory where the data fits) | memory | dataloader
    num_workers: int = bounded(2, ge=0, note="0 = read in the main process")
    pin_memory: bool = True  # only used when training on CUDA
    persistent_workers: bool = True
    prefetch_factor: int = bounded(2, ge=1)


LOADER_MODES = ("auto", "memory", "dataloader")


@dataclass
class RunOptions:
    #: replace a run already in the run folder: the old folder is moved aside (renamed), never deleted
    overwrite: bool = False


@dataclass
class RunConf:
    seed: int = bounded(0, ge=0, le=2**32 - 1)  # numpy's and torch's seeds
    run: RunOptions = field(default_factory=RunOptions)
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
    """Range and choice checks on the composed config (types are already checked by Hydra).

    Ranges are the options' declarations (:mod:`mtlrun.config.ranges`): every option outside its
    range is named in one line; the choices and cross-field rules follow.
    """
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
    check_ranges(cfg)
    r = cfg.report
    if r.baselines not in (True, False, "only_cached"):
        raise choices_error("report.baselines", r.baselines, ["true", "false", "only_cached"])
    if r.batched not in ("auto", "grouped", "separate"):
        raise choices_error("report.batched", r.batched, ["auto", "grouped", "separate"])
    if r.correction not in CORRECTIONS:
        raise choices_error("report.correction", r.correction, CORRECTIONS)
    if r.pool not in POOL_MODES:
        raise choices_error("report.pool", r.pool, POOL_MODES)
    cache_dir = Path(str(r.cache_dir))
    if r.baselines is not False and cache_dir.exists() and not cache_dir.is_dir():
        raise ConfigError(f"report.cache_dir={r.cache_dir} is a file, not a folder; choose another report.cache_dir")
    for folder in r.pool_from or []:
        if not Path(str(folder)).is_dir():  # relative to the launch folder, like report.cache_dir
            raise ConfigError(f"report.pool_from: no such folder '{folder}' (paths are relative to the launch folder)")
    t = cfg.trainer
    if t.on_nan not in ON_NAN:
        raise choices_error("trainer.on_nan", t.on_nan, ON_NAN)
    if t.optimizer not in OPTIMIZERS:
        raise choices_error("trainer.optimizer", t.optimizer, OPTIMIZERS)
    if t.device not in DEVICES and not str(t.device).startswith("cuda:"):
        raise choices_error("trainer.device", t.device, DEVICES)
    validate_trainer_extras(t)
    loader = cfg.get("loader")
    if loader is not None and loader.mode not in LOADER_MODES:
        raise choices_error("loader.mode", loader.mode, LOADER_MODES)


def validate_trainer_extras(t: Any) -> None:
    """Precision, threads and the learning-rate schedule's choices and cross-field rule."""
    if str(t.precision) not in PRECISIONS:
        raise choices_error("trainer.precision", t.precision, PRECISIONS)
    threads = str(t.threads)
    if threads != "auto" and not (threads.isdigit() and int(threads) >= 1):
        raise ConfigError(f"trainer.threads={threads} must be auto or a number of threads >= 1")
    if t.scheduler not in SCHEDULERS:
        raise choices_error("trainer.scheduler", t.scheduler, SCHEDULERS)
    if t.get("data_parallel", "exact") not in DATA_PARALLEL:
        raise choices_error("trainer.data_parallel", t.data_parallel, DATA_PARALLEL)
    if t.scheduler == "warmup_cosine" and t.warmup_epochs >= t.epochs:
        raise ConfigError(
            f"trainer.warmup_epochs={t.warmup_epochs} must be < trainer.epochs={t.epochs} "
            "(the cosine part needs at least one epoch)"
        )


# -- declared ranges (mtlrun.config.ranges) ------------------------------------------------


def group_schema(group: str, node: Any) -> type | None:
    """The generated options dataclass of a group's chosen built-in (``None`` for a user component)."""
    from mtlrun.config.options import OPTIONS

    if not isinstance(node, Mapping) and not hasattr(node, "get"):
        return None
    return OPTIONS.get((group, str(node.get("name"))))


#: the groups whose chosen choice brings its own options
CHOICE_GROUPS = ("dataset", "encoder", "arch", "balancer", "schedule", "logger")


def config_ranges(cfg: Any) -> Iterator[tuple[str, Range]]:
    """``(dotted key, range)`` of every ranged option of a composed config: the run's schema and
    each group's chosen built-in."""
    yield from ranges_of(RunConf)
    for group in CHOICE_GROUPS:
        schema = group_schema(group, cfg.get(group)) if hasattr(cfg, "get") else None
        if schema is not None:
            yield from ranges_of(schema, f"{group}.")


def _value(cfg: Any, key: str) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, default=None, throw_on_missing=False)


def range_problems(cfg: Any) -> list[str]:
    """Every option of ``cfg`` outside its declared range, as ``key=value must be ...``."""
    from omegaconf import OmegaConf

    found = []
    for key, declared in config_ranges(cfg):
        value = _value(cfg, key)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        problem = declared.problem(key, value)
        if problem:
            found.append(problem)
    return found


def check_ranges(cfg: Any) -> None:
    """One line naming every option of ``cfg`` outside its declared range (``; ``-separated)."""
    problems = range_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))


def _swept_values(override: Any) -> list[tuple[Any, str]]:
    """``(value, where)`` of each value a sweep override gives (an interval: both ends)."""
    from hydra.core.override_parser.types import IntervalSweep

    swept = override.value()
    if isinstance(swept, IntervalSweep):
        where = f" (an end of {override.key_or_group}=interval({swept.start}, {swept.end}))"
        return [(swept.start, where), (swept.end, where)]
    try:
        return [(value, "") for value in override.sweep_iterator()]
    except Exception:  # a sweep kind this check does not enumerate: its jobs check themselves
        return []


def sweep_problems(config: Any) -> list[str]:
    """Every value a sweep would give an option outside its declared range, before any job starts.

    Reads the sweep overrides of the command line (``hydra.overrides.task``) and of the sweeper's
    config (``hydra.sweeper.params``); an option of a group (``encoder.dropout``) is checked against
    each choice the sweep runs that declares it. Each job still runs :func:`check_ranges` itself.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from mtlrun.config.options import OPTIONS

    lines = [str(x) for x in OmegaConf.select(config, "hydra.overrides.task", default=None) or []]
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    swept = OmegaConf.to_container(params) if OmegaConf.is_config(params) else None
    if isinstance(swept, dict):
        lines += [f"{key!s}={value!s}" for key, value in swept.items()]
    try:
        overrides = OverridesParser.create().parse_overrides(lines)
    except Exception:  # Hydra reports a malformed override itself
        return []
    sweeps = {o.key_or_group: o for o in overrides if o.is_sweep_override()}
    schema = dict(ranges_of(RunConf))
    problems: list[str] = []
    for key, override in sweeps.items():
        group, _, option = key.partition(".")
        declared: list[Range] = []
        if key in schema:
            declared.append(schema[key])
        elif group in CHOICE_GROUPS and option:
            chosen = (
                [v for v, _ in _swept_values(sweeps[group])]
                if group in sweeps
                else [OmegaConf.select(config, f"{group}.name", default=None)]
            )
            for choice in chosen:
                found = OPTIONS.get((group, str(choice)))
                declared += [r for k, r in ranges_of(found) if k == option] if found is not None else []
        for value, where in _swept_values(override):
            problem = next((p for r in declared if (p := r.problem(key, value))), None)
            if problem and problem + where not in problems:
                problems.append(problem + where)
    return problems


def plain(node: Any) -> Any:
    """A resolved, plain-Python copy of a config node (dicts, lists, scalars)."""
    from omegaconf import OmegaConf

    if isinstance(node, DictConfig) or OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node

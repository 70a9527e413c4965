"""Settings that would do nothing in this configuration are refused, not silently ignored.

A researcher who writes ``trainer.momentum=0.5`` with Adam, or ``report.alpha=0.01`` with
``report.baselines=false``, believes the run used that value; the run would be identical without
it. Each such setting is a one-line :class:`~mtlrun.errors.ConfigError` naming the key and what
would make it count. A setting counts as given when it differs from the schema's default (a
default cannot be told apart from the same value typed out, and is harmless either way).

The check reads the composed config only, so it runs before the run folder exists (the Hydra
callback of :mod:`mtlrun.cli.folder_guard`) and again with the other checks inside the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig

from mtlrun.config.options import ScheduleCurriculumOptions
from mtlrun.config.schema import DiagnosticsConf, LoaderConf, ReportConf, TrainerConf
from mtlrun.errors import ConfigError


def _changed(node: Any, schema: type, keys: tuple[str, ...] | None = None) -> Iterator[tuple[str, Any]]:
    """``(key, value)`` of the options of ``node`` that differ from the schema's defaults."""
    defaults = schema()
    for f in fields(schema):
        if keys is not None and f.name not in keys:
            continue
        value = node.get(f.name) if node is not None else None
        if node is not None and f.name in node and value != getattr(defaults, f.name):
            yield f.name, value


def _show(value: Any) -> str:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def inert_settings(cfg: DictConfig) -> Iterator[str]:
    """One message per setting that does nothing in ``cfg``."""
    trainer = cfg.get("trainer")
    if trainer is not None and trainer.get("optimizer") != "sgd":
        for key, value in _changed(trainer, TrainerConf, ("momentum",)):
            yield (
                f"trainer.{key}={_show(value)} does nothing with trainer.optimizer={trainer.optimizer} "
                "(only sgd uses momentum); use trainer.optimizer=sgd or drop it"
            )
    if trainer is not None:
        yield from _inert_lr_schedule(trainer)
    report = cfg.get("report")
    if report is not None and report.get("baselines") is False:
        for key, value in _changed(report, ReportConf):
            if key != "baselines":
                yield (
                    f"report.{key}={_show(value)} does nothing with report.baselines=false (no report is written); "
                    "drop it or use report.baselines=true"
                )
    loader = cfg.get("loader")
    if loader is not None and loader.get("mode") == "memory":
        yield from inert_loader_settings(loader, "loader.mode=memory")
    diagnostics = cfg.get("diagnostics")
    if diagnostics is not None and diagnostics.get("every") == 0:
        for key, value in _changed(diagnostics, DiagnosticsConf, ("affinity",)):
            yield f"diagnostics.{key}={_show(value)} does nothing with diagnostics.every=0 (diagnostics are off)"
    yield from _inert_schedule(cfg.get("schedule"))


def inert_loader_settings(loader: Any, why: str) -> Iterator[str]:
    """DataLoader options of a run whose batches are sliced from tensors in memory (``why`` says how
    that path was chosen: ``loader.mode=memory``, or ``auto`` finding that the data fits)."""
    for key, value in _changed(loader, LoaderConf):
        if key != "mode":
            yield (
                f"loader.{key}={_show(value)} does nothing with {why} (batches are sliced from tensors, "
                "no DataLoader); use loader.mode=dataloader or drop it"
            )


#: the learning-rate schedules (``trainer.scheduler``) that read each schedule option
_LR_OPTION_USERS = {
    "warmup_epochs": ("warmup_cosine",),
    "step_size": ("step",),
    "gamma": ("step", "plateau"),
    "min_lr": ("cosine", "warmup_cosine", "plateau"),
    "plateau_patience": ("plateau",),
}


def _inert_lr_schedule(trainer: Any) -> Iterator[str]:
    """Learning-rate schedule options that the chosen ``trainer.scheduler`` does not read."""
    scheduler = trainer.get("scheduler", "none")
    for key, value in _changed(trainer, TrainerConf, tuple(_LR_OPTION_USERS)):
        users = _LR_OPTION_USERS[key]
        if scheduler not in users:
            yield (
                f"trainer.{key}={_show(value)} does nothing with trainer.scheduler={scheduler}; "
                f"it applies to trainer.scheduler={' or '.join(users)}"
            )


def _inert_schedule(schedule: Any) -> Iterator[str]:
    """Curriculum options that only the difficulty order reads, given with explicit entry epochs."""
    if not isinstance(schedule, DictConfig) or schedule.get("name") != "curriculum":
        return
    by_epochs = schedule.get("order") == "epochs" or (schedule.get("order") == "auto" and schedule.get("start_epochs"))
    if not by_epochs:
        return
    defaults = ScheduleCurriculumOptions()
    for key in ("stagger", "warmup_steps"):
        if key in schedule and schedule.get(key) != getattr(defaults, key):
            yield (
                f"schedule.{key}={_show(schedule.get(key))} does nothing when tasks enter at given epochs "
                "(schedule.start_epochs or order=epochs); it applies to schedule.order=difficulty"
            )


def check_inert(cfg: DictConfig) -> None:
    """Raise a one-line ConfigError for the first setting that would do nothing."""
    for message in inert_settings(cfg):
        raise ConfigError(message)

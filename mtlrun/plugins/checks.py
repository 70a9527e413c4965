"""Before the run folder exists: every user component the config chooses imports, keeps its
family's contract and gets valid options.

Hydra already type-checks the options of a typed node while composing; what is left is what only
the signature can say: a key added with ``+`` (or in a user YAML) that the component does not take,
a required option nobody gave, an option whose default could not live in the node, and components
chosen by a user YAML (untyped). Runs from :func:`mtlrun.config.schema.validate`, which the folder guard
calls at ``on_run_start`` (before Hydra creates the folder) and the run repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtlrun.config.ranges import check_plugin_ranges
from mtlrun.errors import ConfigError
from mtlrun.plugins.families import COMPONENT_GROUPS, TARGET_CHOICE, registry_of
from mtlrun.plugins.schema import signature_target
from mtlrun.plugins.targets import chosen_name

#: what ``GROUP=python`` without a ``_target_`` is told to add
EXAMPLES = {
    "dataset": "build (a function returning data)",
    "encoder": "MyEncoder (docs/plugins.md)",
    "arch": "MyArch (docs/plugins.md)",
    "balancer": "MyBalancer (docs/plugins.md)",
}


def check_components(cfg: DictConfig, builtin: Callable[[str, str], bool]) -> None:
    """Raise a one-line ConfigError for the first user component of ``cfg`` that is wrong.

    ``builtin(group, choice)`` tells packaged choices (left to their typed nodes); a family is
    imported only for a group whose choice is a user component, so a run of built-ins imports
    nothing here.
    """
    for group in COMPONENT_GROUPS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        name = chosen_name(node)
        if name == TARGET_CHOICE:
            raise ConfigError(f"{group}={TARGET_CHOICE} needs {group}._target_=my_pkg.my_module.{EXAMPLES[group]}")
        if builtin(group, name):
            continue
        registry = registry_of(group)
        factory = registry.get(name)  # imports it (launch folder first), checks the contract
        for key in OmegaConf.missing_keys(node):
            raise ConfigError(f"{group}.{key} is required by {name} and has no value; set {group}.{key}=VALUE")
        options = {str(k): v for k, v in OmegaConf.to_container(node, resolve=True).items()}
        registry.plugin_arguments(factory, options)  # unknown keys, wrong types: one line with the valid keys
        check_plugin_ranges(group, factory, options)  # the ranges its signature declares (Annotated)
        _check_required(group, name, factory, options)
    check_task_metrics(cfg)


def _check_required(group: str, name: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    import inspect

    from mtlrun.plugins.families import FAMILIES

    skip = {"self", *FAMILIES[group].context}
    params = inspect.signature(signature_target(factory)).parameters
    for key, param in params.items():
        if key in skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is param.empty and key not in options:
            raise ConfigError(f"{group}.{key} is required by {name} and has no value; set {group}.{key}=VALUE")


def check_task_metrics(cfg: DictConfig) -> None:
    """The user's metrics named in ``dataset.tasks.*.metrics`` import and declare a direction."""
    tasks = OmegaConf.select(cfg, "dataset.tasks", default=None)
    if not isinstance(tasks, DictConfig):
        return
    for task, spec in tasks.items():
        metrics = spec.get("metrics") if isinstance(spec, DictConfig) else None
        for metric in [metrics] if isinstance(metrics, str) else list(metrics or []):
            if isinstance(metric, str):
                from mtlrun.plugins.metrics import check_user_metric, is_user_metric

                if is_user_metric(metric):
                    check_user_metric(metric, f"dataset.tasks.{task}.metrics")

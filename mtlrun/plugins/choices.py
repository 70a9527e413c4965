"""Make user components choosable before Hydra composes: typed nodes in Hydra's ConfigStore.

Two ways in, both ending in a typed node built from the component's signature
(:mod:`mtlrun.plugins.schema`), so options are type-checked while composing and shown by
``--cfg job`` like a built-in's:

- ``GROUP._target_=pkg.mod.Name`` (``encoder``, ``arch``, ``balancer``) is short for
  ``GROUP=python GROUP._target_=pkg.mod.Name``: the ``python`` choice's node
  (``schema/GROUP/python``) becomes that class's options. The class is imported here, from the
  launch folder first. A dataset keeps its own rules (``dataset=python``, untyped ``+dataset.KEY``);
  ``dataset._target_=...`` alone now implies ``dataset=python`` too.
- an installed package's entry point ``my_method`` becomes the group choice ``balancer=my_method``
  (a ConfigStore group entry whose node is built, importing the plugin, only when Hydra loads it,
  i.e. when it is chosen, however: command line, a preset, a sweep).

On a group chosen either way ``+GROUP.KEY=V`` means "set this option": it is passed on as
``++GROUP.KEY=V``, which overrides a declared option (typed) and adds any other key, which the
check before the run (:mod:`mtlrun.plugins.checks`) then refuses with the valid keys.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigNode

from mtlrun.errors import ConfigError
from mtlrun.plugins.families import COMPONENT_GROUPS, FAMILIES, TARGET_CHOICE

#: the groups whose ``_target_`` node is typed from the class (the dataset's stays untyped)
TYPED_TARGET_GROUPS = ("encoder", "arch", "balancer")
#: command-line flags that bring configs of their own (which may choose a plugin) or list choices
DISCOVERY_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn", "--experimental-rerun")
DISCOVERY_FLAGS += ("--shell-completion", "-sc", "--info", "-i")


def empty_target_node(group: str) -> type:
    """The ``python`` choice's node before a class is named: ``name`` and an unset ``_target_``."""

    @dataclass
    class TargetOptions:
        name: str = TARGET_CHOICE
        _target_: Optional[str] = None

    TargetOptions.__name__ = TargetOptions.__qualname__ = f"{group.capitalize()}TargetOptions"
    return TargetOptions


def register_empty_targets(store: Any) -> None:
    for group in TYPED_TARGET_GROUPS:
        store.store(group=f"schema/{group}", name=TARGET_CHOICE, node=empty_target_node(group))


@dataclass
class _Parsed:
    line: str
    key: str
    kind: str  # "", "+", "++", "~"
    values: list[str] | None  # None: a sweep that cannot be listed (glob, range, interval)
    is_sweep: bool = False
    #: what to put on the command line instead: ``insert`` before it, ``replace`` it
    extra: dict[str, str] = field(default_factory=dict)


def _parse(overrides: list[str]) -> list[_Parsed]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    parser = OverridesParser.create()
    parsed = []
    for line in overrides:
        o = parser.parse_overrides([line])[0]
        kind = {"ADD": "+", "FORCE_ADD": "++", "DEL": "~"}.get(o.type.name, "")
        values: list[str] | None
        if o.value_type in (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP):
            values = [str(v) for v in o.sweep_string_iterator()]
        elif o.is_sweep_override():
            values = None
        else:
            value = o.value()
            values = [] if value is None else [str(value)]
        key = o.key_or_group if o.package is None else f"{o.key_or_group}@{o.package}"
        parsed.append(_Parsed(line, key, kind, values, o.is_sweep_override()))
    return parsed


def prepare(flags: list[str], overrides: list[str], builtin: Callable[[str, str], bool]) -> list[str]:
    """Register what the command line chooses and return the overrides Hydra should get.

    ``builtin(group, choice)`` tells a packaged choice. Entry points are read only when the
    command line could choose or list a plugin (a choice that is no built-in, configs of its own,
    tab completion), so a plain run never touches ``importlib.metadata``.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    forget_choices(store)
    parsed = _parse(overrides)
    plugin_groups = set(_register_targets(store, parsed))
    if _could_choose_plugins(flags, parsed, builtin):
        plugin_groups |= register_entry_points(store, parsed, builtin)
    return _rewrite(parsed, plugin_groups)


def _choices(parsed: list[_Parsed], group: str) -> list[_Parsed]:
    return [p for p in parsed if p.key == group and p.kind != "~"]


def _register_targets(store: Any, parsed: list[_Parsed]) -> Iterable[str]:
    for p in parsed:
        group, _, rest = p.key.partition(".")
        if rest != "_target_" or group not in COMPONENT_GROUPS or p.kind == "~":
            continue
        chosen = [v for c in _choices(parsed, group) for v in (c.values or ["?"])]
        if group == "dataset":
            if not chosen and p.kind == "":
                p.extra["insert"] = f"{group}={TARGET_CHOICE}"
            continue
        if p.is_sweep:
            raise ConfigError(
                f"{group}._target_={p.line.partition('=')[2]}: a sweep over classes by import path is not supported; "
                f"install them as entry points and sweep {group}=NAME1,NAME2 (docs/plugins.md)"
            )
        if any(c != TARGET_CHOICE for c in chosen):
            raise ConfigError(
                f"{group}={','.join(chosen)} and {group}._target_={p.values[0] if p.values else ''} both choose the "
                f"{group}; keep one"
            )
        if not p.values:
            raise ConfigError(f"{group}._target_ needs an import path, e.g. {group}._target_=my_pkg.my_module.MyClass")
        from mtlrun.plugins.schema import node_or_error, options_node
        from mtlrun.plugins.targets import import_object

        path = p.values[0]
        if not chosen:
            p.extra["insert"] = f"{group}={TARGET_CHOICE}"
        p.extra["replace"] = f"{group}._target_={path}"  # declared by the typed node: no + needed
        factory = import_object(path, f"{group}._target_")
        node = node_or_error(
            lambda f=factory, g=group, path=path: options_node(
                f, FAMILIES[g].context, {"name": TARGET_CHOICE, "_target_": path}, f"{g.capitalize()}TargetOptions"
            ),
            f"{group}._target_={path}",
        )
        store.store(group=f"schema/{group}", name=TARGET_CHOICE, node=node)
        yield group


def _could_choose_plugins(flags: list[str], parsed: list[_Parsed], builtin: Callable[[str, str], bool]) -> bool:
    if any(flag.split("=", 1)[0] in DISCOVERY_FLAGS for flag in flags):
        return True
    for p in parsed:
        if p.key.startswith("hydra.searchpath"):
            return True
        if p.key in COMPONENT_GROUPS and p.kind != "~":
            if p.values is None or any(not builtin(p.key, v) for v in p.values):
                return True
    return False


class LazyConfigNode(ConfigNode):
    """A ConfigStore entry whose node is built when Hydra loads it, so a plugin is imported only when
    chosen. Hydra's store holds ``ConfigNode`` s and copies one on every load (``ConfigStore.load``);
    this one carries the recipe, and the copy builds the node on first access."""

    def __init__(self, name: str, group: str, build: Callable[[], type]) -> None:  # noqa: D107
        self.name, self.group, self.package, self.provider = name, group, None, PROVIDER
        self._build = build
        self._node: Any = None

    @property  # type: ignore[override]
    def node(self) -> Any:
        if self._node is None:
            from omegaconf import OmegaConf

            self._node = OmegaConf.structured(self._build())
        return self._node

    @node.setter
    def node(self, value: Any) -> None:
        self._node = value


def forget_choices(store: Any) -> None:
    """Undo an earlier :func:`prepare` of this process (a test, an in-process caller): empty
    ``python`` nodes again, no plugin entries."""
    register_empty_targets(store)
    for group in COMPONENT_GROUPS:
        entries = store.repo.get(group, {})
        for key in [k for k, v in entries.items() if getattr(v, "provider", None) == PROVIDER]:
            del entries[key]
    _plugin_node.cache_clear()


#: the ConfigStore provider of plugin entries
PROVIDER = "mtlrun-plugin"


def register_entry_points(store: Any, parsed: list[_Parsed], builtin: Callable[[str, str], bool]) -> set[str]:
    """A group entry per installed plugin (not hidden by a built-in); returns the groups the command
    line chooses a plugin for."""
    from mtlrun.plugins import entry_points

    chosen: set[str] = set()
    for group in COMPONENT_GROUPS:
        for name in entry_points.installed(group):
            if builtin(group, name):
                continue
            store.repo.setdefault(group, {})[f"{name}.yaml"] = LazyConfigNode(
                f"{name}.yaml", group, functools.partial(_plugin_node, group, name)
            )
            if any(name in (c.values or []) for c in _choices(parsed, group)):
                chosen.add(group)
    return chosen


@functools.cache
def _plugin_node(group: str, name: str) -> type:
    from mtlrun.plugins import entry_points
    from mtlrun.plugins.schema import node_or_error, options_node

    plugin = entry_points.find(group, name)
    assert plugin is not None
    factory = entry_points.load(plugin)
    if not callable(factory):
        raise ConfigError(
            f"{group}={name}: {plugin.origin} is not a class or function; it must be {FAMILIES[group].contract}"
        )
    return node_or_error(
        lambda: options_node(factory, FAMILIES[group].context, {"name": name}, f"{group.capitalize()}PluginOptions"),
        f"{group}={name} ({plugin.origin})",
    )


def _rewrite(parsed: list[_Parsed], plugin_groups: set[str]) -> list[str]:
    out: list[str] = []
    for p in parsed:
        if "insert" in p.extra:
            out.append(p.extra["insert"])
        if "replace" in p.extra:
            out.append(p.extra["replace"])
            continue
        group = p.key.split(".", 1)[0]
        if p.kind == "+" and group in plugin_groups and "." in p.key:
            out.append("+" + p.line)
            continue
        out.append(p.line)
    return out

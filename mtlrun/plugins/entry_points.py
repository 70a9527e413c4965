"""Components that installed packages declare as Python entry points.

A package makes ``balancer=my_method`` choosable by declaring, in its ``pyproject.toml``::

    [project.entry-points."mtlrun.balancers"]
    my_method = "my_pkg.balancers:MyMethod"

(likewise ``mtlrun.archs``, ``mtlrun.encoders``, ``mtlrun.datasets``, ``mtlrun.metrics``).

Discovery is lazy and cheap: the entry points are read (``importlib.metadata``) only when a
command could choose or list one, and a plugin's module is imported only when it is chosen. A
broken plugin therefore never breaks ``mtlrun`` for runs that do not use it: choosing it is a
one-line error naming the distribution and the entry point, and ``mtlrun --help`` lists it with
that reason (found without importing it: see :func:`describe`). A name that a built-in already
has stays the built-in's (the plugin is listed as hidden); the same name from two distributions
is an error when chosen.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

from mtlrun.errors import ConfigError
from mtlrun.plugins.families import FAMILIES
from mtlrun.plugins.targets import first_line


@dataclass(frozen=True)
class Plugin:
    """One declared entry point: ``name = module:attribute`` of a distribution."""

    family: str
    name: str
    value: str
    distribution: str

    @property
    def origin(self) -> str:
        """How an error names it: the entry point and its distribution."""
        return f"entry point '{self.name} = {self.value}' ({FAMILIES[self.family].entry_points}) of {self.distribution}"


@functools.cache
def _declared(group: str) -> tuple[tuple[str, str, str], ...]:
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        label = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "an unknown distribution"
        found.append((ep.name, ep.value, label))
    return tuple(sorted(set(found)))


def installed(family: str) -> dict[str, list[Plugin]]:
    """``{name: [plugins]}`` declared for ``family``; more than one plugin means a name clash."""
    plugins: dict[str, list[Plugin]] = {}
    for name, value, dist in _declared(FAMILIES[family].entry_points):
        plugins.setdefault(name, []).append(Plugin(family, name, value, dist))
    return plugins


def forget() -> None:
    """Read the entry points again at the next look-up (after installing a package in-process)."""
    _declared.cache_clear()
    _loaded.cache_clear()


def find(family: str, name: str) -> Plugin | None:
    """The plugin of ``family`` called ``name``, None if there is none; a clash is a ConfigError."""
    plugins = installed(family).get(name)
    if not plugins:
        return None
    if len({(p.value, p.distribution) for p in plugins}) > 1:
        where = "; ".join(p.origin for p in plugins)
        raise ConfigError(f"{FAMILIES[family].group}={name} is declared by more than one package: {where}")
    return plugins[0]


def load(plugin: Plugin) -> Any:
    """Import the object ``plugin`` names; a one-line ConfigError naming it if that fails."""
    return _loaded(plugin)


@functools.cache
def _loaded(plugin: Plugin) -> Any:
    module, _, attribute = plugin.value.partition(":")
    try:
        obj: Any = importlib.import_module(module.strip())
        for part in filter(None, attribute.strip().split(".")):
            obj = getattr(obj, part)
    except Exception as ex:  # a plugin's module may raise anything while it imports
        raise ConfigError(f"{plugin.family}={plugin.name}: {plugin.origin} does not load: {first_line(ex)}") from None
    return obj


def describe(plugin: Plugin) -> str:
    """The first paragraph of the plugin's docstring, read from its source without importing it,
    or why it cannot be loaded; empty when neither is known (``--help`` stays torch-free)."""
    module, _, attribute = plugin.value.partition(":")
    origin = _source_file(module.strip())
    if origin is None:
        return f"cannot be loaded: no module named '{module.strip()}'"
    try:
        with open(origin, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError) as ex:
        return f"cannot be loaded: {first_line(ex)}"
    name = attribute.strip().split(".")[0] if attribute.strip() else ""
    node: Any = tree
    if name:
        node = next(
            (
                n
                for n in tree.body
                if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
            ),
            None,
        )
    doc = ast.get_docstring(node) if node is not None else None
    return " ".join(doc.split("\n\n")[0].replace("``", "").split()) if doc else ""


def _source_file(module: str) -> str | None:
    """Where ``module``'s source is, found the way ``import`` would but without running any of it
    (``importlib.util.find_spec`` would execute the parent packages)."""
    path = None
    spec = None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        if name in sys.modules:
            spec = getattr(sys.modules[name], "__spec__", None)
        else:
            spec = None
            for finder in sys.meta_path:
                find_spec = getattr(finder, "find_spec", None)
                if find_spec is None:
                    continue
                try:
                    spec = find_spec(name, path)
                except (ImportError, ValueError):
                    spec = None
                if spec is not None:
                    break
        if spec is None:
            return None
        path = spec.submodule_search_locations
    origin = getattr(spec, "origin", None)
    return origin if origin and origin.endswith(".py") else None

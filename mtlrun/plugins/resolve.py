"""Find a component that is not built in: an installed entry point, else an import path."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from mtlrun.plugins import entry_points
from mtlrun.plugins.families import FAMILIES
from mtlrun.plugins.schema import signature_target
from mtlrun.plugins.targets import import_object, is_import_path

#: a family's contract: None when ``obj`` keeps it, else what is wrong (a phrase)
Contract = Callable[[Any], "str | None"]


def find_component(group: str, name: str) -> tuple[Any, str] | None:
    """``(object, how errors name it)`` for a plugin ``name`` of ``group``, None if ``name`` is neither
    an installed entry point nor an import path."""
    plugin = entry_points.find(group, name)
    if plugin is not None:
        return entry_points.load(plugin), f"{group}={name} ({plugin.origin})"
    if is_import_path(name):
        return import_object(name, f"{group}._target_"), f"{group}._target_={name}"
    return None


def contract_problem(group: str, obj: Any, contract: Contract) -> str | None:
    """What keeps ``obj`` from being a component of ``group``, with the family's contract, or None."""
    problem = contract(obj)
    return f"{problem}; it must be {FAMILIES[group].contract}" if problem else None


def missing_parameters(factory: Callable[..., Any], names: Iterable[str]) -> list[str]:
    """Which of ``names`` ``factory`` cannot be called with (it takes neither them nor ``**kwargs``)."""
    try:
        params = inspect.signature(signature_target(factory)).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []
    return [n for n in names if n not in params]


def subclass_contract(bases: tuple[type, ...], takes: tuple[str, ...]) -> Contract:
    """The contract "a concrete subclass of one of ``bases`` whose constructor takes ``takes``"."""

    def check(obj: Any) -> str | None:
        if not (inspect.isclass(obj) and issubclass(obj, bases)):
            return f"{getattr(obj, '__qualname__', type(obj).__name__)} is not a subclass of {_names(bases)}"
        if inspect.isabstract(obj):
            hooks = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
            return f"{obj.__qualname__} does not implement {hooks}"
        missing = missing_parameters(obj, takes)
        if missing:
            return f"{obj.__qualname__}.__init__ does not take {', '.join(missing)}"
        return None

    return check


def factory_contract(bases: tuple[type, ...], takes: tuple[str, ...]) -> Contract:
    """A subclass of ``bases`` (as :func:`subclass_contract`), or a function (its result is checked
    when it is built) whose parameters include ``takes``."""
    as_class = subclass_contract(bases, takes)

    def check(obj: Any) -> str | None:
        if inspect.isclass(obj):
            return as_class(obj)
        if not callable(obj):
            return f"{type(obj).__name__} is neither a class nor a function"
        missing = missing_parameters(obj, takes)
        return f"{getattr(obj, '__qualname__', obj)} does not take {', '.join(missing)}" if missing else None

    return check


def _names(bases: tuple[type, ...]) -> str:
    return " or ".join(b.__qualname__ for b in bases)

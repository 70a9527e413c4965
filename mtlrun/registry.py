"""One small registry used by every family (datasets, architectures, encoders, balancers).

Components are built from configuration mappings; :meth:`Registry.build` checks every key and
value against the constructor's signature so that a typo or a wrong type becomes a one-line
:class:`~mtlrun.errors.ConfigError` that names the key, instead of a traceback deep in a model.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from mtlrun.errors import ConfigError, choices_error

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name (the YAML file name under ``conf/<group>/``) to a class or factory."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._entries: dict[str, Callable[..., T]] = {}
        #: what a user's component of this family must be (see :meth:`accept_plugins`); None: built-ins only
        self._contract: Callable[[Any], str | None] | None = None
        self._arguments: Callable[[Callable[..., Any], Mapping[str, Any]], dict[str, Any]] | None = None

    def accept_plugins(
        self,
        contract: Callable[[Any], str | None],
        arguments: Callable[[Callable[..., Any], Mapping[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """Let :meth:`get` also find components that are not registered: an installed entry point
        (``mtlrun.<group>s``) or an import path, each checked against ``contract`` (None when an object
        keeps it, else what is wrong). ``arguments`` checks a plugin's options (default
        :func:`check_options` without the arguments the code passes). See :mod:`mtlrun.plugins`."""
        self._contract, self._arguments = contract, arguments

    def plugin_arguments(self, factory: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """A user component's options checked against its signature (unknown keys, wrong types)."""
        if self._arguments is not None:
            return self._arguments(factory, options)
        from mtlrun.plugins.families import FAMILIES

        return check_options(factory, options, prefix=self.group, skip=set(FAMILIES[self.group].context))

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(obj: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise KeyError(f"{self.group} '{name}' is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Callable[..., T]:
        if name in self._entries:
            return self._entries[name]
        if self._contract is not None:
            from mtlrun.plugins.resolve import contract_problem, find_component

            found = find_component(self.group, name)
            if found is not None:
                component, key = found
                problem = contract_problem(self.group, component, self._contract)
                if problem:
                    raise ConfigError(f"{key}: {problem}")
                return component  # type: ignore[no-any-return]
        raise choices_error(self.group, name, self.names())

    def build(self, name: str, options: Mapping[str, Any], /, **context: Any) -> T:
        """Build ``name`` with user ``options`` (validated) plus internal ``context`` arguments."""
        factory = self.get(name)
        checked = check_options(factory, options, prefix=self.group, skip=set(context))
        check_declared_ranges(self.group, name, factory, checked)  # the same ranges the config is checked against
        return factory(**context, **checked)


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` (already a plain Python object) fits a type annotation."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return any(_accepts(a, value) for a in args)
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (bool, str):
        return isinstance(value, annotation)
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if args and args[-1] is not Ellipsis:
            inner = args[0] if origin is not tuple else None
            if inner is not None:
                return all(_accepts(inner, v) for v in value)
        return True
    if origin in (dict, Mapping) or annotation is dict:
        return isinstance(value, Mapping)
    return True


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(annotation)))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def check_options(
    factory: Callable[..., Any], options: Mapping[str, Any], *, prefix: str, skip: set[str] = frozenset()
) -> dict[str, Any]:
    """Validate user options against ``factory``'s signature; return them as plain values."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolved forward references: fall back to raw annotations
        hints = {}
    params = {
        n: p
        for n, p in signature.parameters.items()
        if n not in ("self", *skip) and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key == "name" or key.startswith("_"):
            continue
        if key not in params:
            raise ConfigError(f"unknown key '{prefix}.{key}'; valid keys: {', '.join(sorted(params)) or '(none)'}")
        annotation = hints.get(key, params[key].annotation)
        if not _accepts(annotation, value):
            raise ConfigError(f"{prefix}.{key}={value!r} has the wrong type; expected {_describe(annotation)}")
        checked[key] = value
    return checked


def positive(prefix: str, **values: float) -> None:
    """Raise a one-line ConfigError unless every value is > 0 (constructor-side range checks)."""
    for key, value in values.items():
        if not value > 0:
            raise ConfigError(f"{prefix}.{key}={value} must be > 0")


def in_range(prefix: str, key: str, value: float, low: float, high: float) -> None:
    """Raise a one-line ConfigError unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ConfigError(f"{prefix}.{key}={value} must lie in [{low}, {high}]")


def check_declared_ranges(group: str, choice: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """The options a component is built with (also from Python) inside the ranges declared for it:
    a built-in's in ``mtlrun/config/options.py``, a user's in its signature (``Annotated``)."""
    from mtlrun.config.options import OPTIONS
    from mtlrun.config.ranges import annotated_ranges, check_options_ranges, ranges_of

    schema = OPTIONS.get((group, choice))
    ranges = dict(ranges_of(schema)) if schema is not None else annotated_ranges(factory)
    check_options_ranges(group, ranges, options)

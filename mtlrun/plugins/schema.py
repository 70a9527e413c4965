"""The typed config node of a user component, built from its signature at start-up.

Built-ins get theirs generated into ``mtlrun/config/options.py`` (``mtlrun.config.generate``); a user's
component gets the same node, by the same rules (:func:`mtlrun.config.generate.options_of`), when it
is chosen, so Hydra type-checks ``balancer.my_option=abc`` while composing and ``--cfg job``
shows every option with its default. Options whose default cannot live in a config (an object)
are left out of the node; they can still be set (``+balancer.key=...``) and are checked against
the signature before the run starts (:mod:`mtlrun.plugins.checks`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, List, Optional

from omegaconf import MISSING

from mtlrun.config.generate import options_of
from mtlrun.plugins.targets import first_line

#: the names ``config_gen.omegaconf_type`` writes types with
_TYPES = {"Any": Any, "bool": bool, "int": int, "float": float, "str": str}


def type_from_text(text: str) -> Any:
    """The type that ``mtlrun.config.generate``'s source text names (``Optional[List[int]]``), read
    without ``eval``: the generator writes only these forms."""
    text = text.strip()
    if text.startswith("Optional[") and text.endswith("]"):
        return Optional[type_from_text(text[len("Optional[") : -1])]
    if text.startswith("List[") and text.endswith("]"):
        return List[type_from_text(text[len("List[") : -1])]  # type: ignore[misc]
    return _TYPES[text]


_SCALARS = (bool, int, float, str, type(None))


def signature_target(factory: Callable[..., Any]) -> Callable[..., Any]:
    """What carries the options: a class's ``__init__``, else the function itself."""
    return factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]


def options_node(factory: Callable[..., Any], skip: tuple[str, ...], fixed: dict[str, Any], class_name: str) -> type:
    """A dataclass with the ``fixed`` fields (``name``, ``_target_``) and one typed field per option."""
    fields: list[tuple[str, Any, Any]] = [
        (key, type(value), dataclasses.field(default=value)) for key, value in fixed.items()
    ]
    params = inspect.signature(signature_target(factory)).parameters
    for name, type_text, _ in options_of(factory, skip):
        default = params[name].default
        if default is inspect.Parameter.empty:
            fields.append((name, type_from_text(type_text), dataclasses.field(default=MISSING)))
            continue
        value = _config_value(default)
        if value is _UNREPRESENTABLE:
            continue
        kind = type_from_text(type_text)
        if isinstance(value, (list, dict)):
            fields.append((name, kind, dataclasses.field(default_factory=_copier(value))))
        else:
            fields.append((name, kind, dataclasses.field(default=value)))
    return dataclasses.make_dataclass(class_name, fields)


_UNREPRESENTABLE = object()


def parse_type(text: str) -> Any:
    """The type that ``config_gen.omegaconf_type`` wrote as ``text`` (``Optional[List[int]]``)."""
    head, _, rest = text.partition("[")
    if not rest:
        return _TYPES[text]
    inner = parse_type(rest[:-1])
    return Optional[inner] if head == "Optional" else List[inner]  # noqa: UP006, UP007


def _config_value(value: Any) -> Any:
    """``value`` as a config value (tuples become lists), or ``_UNREPRESENTABLE``."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        items = [_config_value(v) for v in value]
        return _UNREPRESENTABLE if any(v is _UNREPRESENTABLE for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        mapping = {k: _config_value(v) for k, v in value.items()}
        return _UNREPRESENTABLE if any(v is _UNREPRESENTABLE for v in mapping.values()) else mapping
    return _UNREPRESENTABLE


def _copier(value: Any) -> Callable[[], Any]:
    import copy

    return lambda: copy.deepcopy(value)


def node_or_error(build: Callable[[], type], key: str) -> type:
    """``build()``; a signature the node cannot be made from becomes one line naming ``key``."""
    from mtlrun.errors import ConfigError

    try:
        return build()
    except (TypeError, ValueError) as ex:
        raise ConfigError(f"{key}: no config node can be made from its signature: {first_line(ex)}") from None

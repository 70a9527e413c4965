"""A config object as the command-line overrides that compose it from the packaged configs.

``mtlrun.fit(config)`` runs a config through the same Hydra composition as the command, so its
folder is the one ``mtlrun OVERRIDES...`` writes and ``.hydra/overrides.yaml`` holds a command line
that runs it again (``mtlrun resume=FOLDER`` replays it). The overrides are found in two steps:

1. a group whose ``name`` differs from the default choice's and names an option of that group
   selects it (``arch: {name: mtan, ...}`` gives ``arch=mtan``);
2. every value that still differs becomes ``key=value`` (``+key=value`` for a key the packaged
   configs lack, which the run's checks then refuse as on the command line).

The config is then composed from those overrides and must come out equal to the one given (a
mapping may leave keys out: they keep their defaults); otherwise a one-line :class:`ConfigError`
names the first key that differs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mtlrun.api.hydra_app import compose_in, container, job_config, plain
from mtlrun.errors import ConfigError

if TYPE_CHECKING:
    from hydra._internal.hydra import Hydra


def config_overrides(hydra: Hydra, config: Any) -> list[str]:
    """The overrides that compose ``config`` (a DictConfig or a mapping, with or without a ``hydra`` node)."""
    wanted = plain(config)
    composed = compose_in(hydra, [])
    groups = group_choices(hydra, composed, wanted)
    if groups:
        composed = compose_in(hydra, groups)
    base = container(job_config(composed))
    values = [f"{key}={override_value(key, value)}" for key, value in differences(base, wanted)]
    overrides = [*groups, *values]
    if values:
        final = container(job_config(compose_in(hydra, overrides)))
        key = first_mismatch(final, wanted)
        if key is not None:
            raise ConfigError(
                f"the config's '{key}' cannot be composed from the packaged configs by overrides "
                f"({' '.join(overrides)}); give the run as mtlrun.fit(overrides=[...]) instead"
            )
    return overrides


def group_choices(hydra: Hydra, composed: Any, wanted: dict[str, Any]) -> list[str]:
    """``group=choice`` for each config group whose ``name`` in ``wanted`` is another option of that group."""
    choices = composed.hydra.runtime.choices
    selected = []
    for group in choices:
        if "/" in str(group):  # hydra/launcher and the like: Hydra's own, never in a run's config
            continue
        node, default = wanted.get(group), composed.get(group)
        if not isinstance(node, dict) or default is None or "name" not in node:
            continue
        name = node["name"]
        if (
            name != default.get("name")
            and isinstance(name, str)
            and name in hydra.config_loader.get_group_options(group)
        ):
            selected.append(f"{group}={name}")
    return selected


def differences(base: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, wanted value)`` for each value of ``wanted`` not in ``base`` (``+key`` for a new key)."""
    for key, value in wanted.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in base:
            yield f"+{name}", value
        elif isinstance(value, dict) and isinstance(base[key], dict) and value:
            yield from differences(base[key], value, name)
        elif not same(base[key], value):
            yield name, value


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (``1``, ``1.0`` and ``True`` are three values)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def first_mismatch(composed: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> str | None:
    """The dotted key of the first value of ``wanted`` that ``composed`` does not hold (None if all match)."""
    for key, value in wanted.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in composed:
            return name
        if isinstance(value, dict) and isinstance(composed[key], dict) and value:
            found = first_mismatch(composed[key], value, name)
            if found is not None:
                return found
        elif not same(composed[key], value):
            return name
    return None


#: a string that may read back as itself without quotes: a letter first, then letters, digits and ``_-./``
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./]*")


def override_value(key: str, value: Any) -> str:
    """``value`` in Hydra's override grammar, read back as exactly ``value`` (else a :class:`ConfigError`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    text = _render(key, value)
    parsed = OverridesParser.create().parse_override(f"key={text}").value()
    if not same(parsed, value):
        raise ConfigError(f"the config's '{key.lstrip('+')}={value!r}' cannot be written as a command-line override")
    return text


def _render(key: str, value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # inf, -inf, nan
    if isinstance(value, str):
        return value if _reads_back_bare(value) else quoted(value)
    if isinstance(value, list):
        return "[" + ",".join(_render(key, x) for x in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_key(key, k)}:{_render(key, v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"the config's '{key.lstrip('+')}' holds a {type(value).__name__}, which no override can give")


def _reads_back_bare(text: str) -> bool:
    """Whether ``text`` without quotes is read as this very string (``mtan``, not ``true`` or ``1e5``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if not _BARE.fullmatch(text):
        return False
    try:
        return OverridesParser.create().parse_override(f"key={text}").value() == text
    except HydraException:
        return False


def _key(key: str, name: Any) -> str:
    if isinstance(name, str) and _BARE.fullmatch(name):
        return name
    raise ConfigError(f"the config's '{key.lstrip('+')}' has the key {name!r}, which no override can give")


def quoted(text: str) -> str:
    """``text`` as a single-quoted Hydra value: a quote is escaped, and so is each backslash before
    a quote or the closing quote (other backslashes stay as they are)."""
    escaped = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, text).replace("'", "\\'")
    return f"'{escaped}'"

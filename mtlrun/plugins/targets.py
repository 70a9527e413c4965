"""Components named by import path (``pkg.mod.Name``): looked up in the launch folder first.

The ``mtlrun`` console script does not put the folder it is launched from on ``sys.path``, yet a
module lying next to the user's data is what ``_target_`` most often names; so that folder comes
first, then ``sys.path`` (``PYTHONPATH``, installed packages).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from mtlrun.errors import ConfigError


def launch_folder() -> str:
    """The folder ``mtlrun`` was started from (Hydra's original cwd once a run has started)."""
    from hydra.utils import to_absolute_path

    return to_absolute_path(".")


def import_object(path: str, key: str) -> Any:
    """The object ``path`` names (``pkg.mod.Name``); a one-line :class:`ConfigError` naming ``key``
    (``balancer._target_``) when it does not import."""
    launch = launch_folder()
    if launch not in sys.path:
        sys.path.insert(0, launch)
    parts = str(path).split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ConfigError(f"{key}={path} is not an import path; write package.module.Name")
    try:
        obj: Any = importlib.import_module(parts[0])
        for i, part in enumerate(parts[1:], start=1):
            if hasattr(obj, part):
                obj = getattr(obj, part)
            elif isinstance(obj, ModuleType):
                obj = _submodule(".".join(parts[: i + 1]), obj, part)
            else:
                raise AttributeError(f"{type(obj).__name__} {'.'.join(parts[:i])} has no attribute '{part}'")
    except Exception as ex:  # the user's module may raise anything while it imports
        raise ConfigError(f"{key}={path} does not import: {first_line(ex)}") from None
    return obj


def _submodule(name: str, parent: ModuleType, part: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as ex:
        if ex.name != name:  # the submodule exists but imports something missing
            raise
        raise AttributeError(f"module '{parent.__name__}' has no attribute or submodule '{part}'") from None


def first_line(ex: BaseException) -> str:
    """``Type: message`` of an exception, first line only."""
    text = str(ex).strip()
    return f"{type(ex).__name__}: {text.splitlines()[0]}" if text else type(ex).__name__


def is_import_path(name: object) -> bool:
    """Whether a component name is an import path (``pkg.mod.Name``) rather than a registered name."""
    return isinstance(name, str) and "." in name


def chosen_name(node: Mapping[str, Any] | None) -> str:
    """The component a group node selects: its ``_target_`` (an import path) if set, else its ``name``."""
    if node is None:
        return ""
    target = node.get("_target_")
    return str(target) if target else str(node.get("name") or "")

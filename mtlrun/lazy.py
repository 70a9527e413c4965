"""Modules imported on first use, so that starting a run loads only what the run needs.

pandas, PIL, scipy and torchmetrics each take a second or more to import on a small machine,
and most runs (the default one included) never touch some of them. A module-level
``pd = lazy_module("pandas")`` reads like ``import pandas as pd`` but imports pandas at the first
attribute access (``pd.read_csv``), not when the importing module is loaded. Annotations keep
the real types through ``if TYPE_CHECKING: import pandas as pd``.

``importlib.util.LazyLoader`` is not used: it registers the module in ``sys.modules`` at once,
and third-party code that checks ``sys.modules`` would then see a half-loaded module.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name``; imports it on the first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def _load(self) -> ModuleType:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return self._module

    def __getattr__(self, attribute: str) -> Any:
        if attribute in ("_name", "_module"):  # not set yet (copy, unpickling): no recursion
            raise AttributeError(attribute)
        return getattr(self._load(), attribute)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports ``name`` when first used."""
    return LazyModule(name)

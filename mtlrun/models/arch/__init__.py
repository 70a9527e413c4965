"""Architectures: one module per architecture, each registered in ``ARCHS`` by its YAML name."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

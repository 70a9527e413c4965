"""mtlrun: a workbench for multi-task learning research, from the command line or from Python.

>>> import mtlrun
>>> result = mtlrun.fit(overrides=["trainer.epochs=1"])  # doctest: +SKIP
>>> result.metrics, result.delta_m, result.folder  # doctest: +SKIP

Importing the package is cheap (no torch, no Hydra): each name of the Python API is imported from
:mod:`mtlrun.api` the first time it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mtlrun.results.versions import __version__

#: the Python API: each name and the module it lives in, imported on first use
_API = {
    "fit": "mtlrun.api.launch",
    "sweep": "mtlrun.api.launch",
    "compose": "mtlrun.api.hydra_app",
    "load_run": "mtlrun.api.results",
    "load_sweep": "mtlrun.api.results",
    "compare": "mtlrun.api.comparison",
    "RunResult": "mtlrun.api.results",
    "TransferReport": "mtlrun.results.transfer_report",
    "TaskTransfer": "mtlrun.results.transfer_report",
    "MetricTransfer": "mtlrun.results.transfer_report",
    "ConfigError": "mtlrun.errors",
    "RunError": "mtlrun.api.errors",
    "RunFailed": "mtlrun.api.errors",
    "RunDiverged": "mtlrun.api.errors",
    "RunInterrupted": "mtlrun.api.errors",
    "SweepFailed": "mtlrun.api.errors",
    "RunFolderError": "mtlrun.results.run_folder",
}

__all__ = [  # the names of _API, spelled out for linters and star-imports
    "__version__",
    "fit",
    "sweep",
    "compose",
    "load_run",
    "load_sweep",
    "compare",
    "RunResult",
    "TransferReport",
    "TaskTransfer",
    "MetricTransfer",
    "ConfigError",
    "RunError",
    "RunFailed",
    "RunDiverged",
    "RunInterrupted",
    "SweepFailed",
    "RunFolderError",
]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'mtlrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


if TYPE_CHECKING:  # the names above, for type checkers and editors
    from mtlrun.api.comparison import compare
    from mtlrun.api.errors import RunDiverged, RunError, RunFailed, RunInterrupted, SweepFailed
    from mtlrun.api.hydra_app import compose
    from mtlrun.api.launch import fit, sweep
    from mtlrun.api.results import RunResult, load_run, load_sweep
    from mtlrun.errors import ConfigError
    from mtlrun.results.run_folder import RunFolderError
    from mtlrun.results.transfer_report import MetricTransfer, TaskTransfer, TransferReport

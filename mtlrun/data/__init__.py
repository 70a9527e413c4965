"""Datasets: the contracts (``base``, ``tasks``, ...) here, your own data in ``own/``, the built-in
benchmarks in ``benchmarks/``; importing this package registers every dataset in ``DATASETS``."""

import importlib
import pkgutil

from mtlrun.data import benchmarks, own
from mtlrun.data.base import DATASETS, MultiTaskDataset, TaskSpec, TensorSplit
from mtlrun.data.own.python_dataset import build_dataset

for _package in (own, benchmarks):
    for _module in pkgutil.iter_modules(_package.__path__):
        importlib.import_module(f"{_package.__name__}.{_module.name}")

__all__ = ["DATASETS", "MultiTaskDataset", "TaskSpec", "TensorSplit", "build_dataset"]

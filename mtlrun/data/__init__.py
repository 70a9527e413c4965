"""Datasets: importing this package registers every built-in dataset."""

from mtlrun.data import celeba, census_income, multi_digits, multi_mnist, penguins, qm9, synthetic  # noqa: F401
from mtlrun.data.base import DATASETS, MultiTaskDataset, TaskSpec, TensorSplit

__all__ = ["DATASETS", "MultiTaskDataset", "TaskSpec", "TensorSplit"]

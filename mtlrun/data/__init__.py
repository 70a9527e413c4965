"""Datasets: importing this package registers every built-in dataset."""

from mtlrun.data import cityscapes, multi_digits, nyuv2, synthetic  # noqa: F401  (registration)
from mtlrun.data.base import DATASETS, MultiTaskDataset, TaskSpec, TensorSplit

__all__ = ["DATASETS", "MultiTaskDataset", "TaskSpec", "TensorSplit"]

"""Datasets: importing this package registers every built-in dataset."""

from mtlrun.data import (  # noqa: F401  (registration)
    cityscapes,
    image_folder,
    multi_digits,
    multi_domain,
    npy_folder,
    nyuv2,
    synthetic,
    table,
)
from mtlrun.data.base import DATASETS, MultiTaskDataset, TaskSpec, TensorSplit
from mtlrun.data.python_dataset import build_dataset

__all__ = ["DATASETS", "MultiTaskDataset", "TaskSpec", "TensorSplit", "build_dataset"]

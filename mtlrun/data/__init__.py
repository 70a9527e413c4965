"""Datasets: importing this package registers every built-in dataset."""

from mtlrun.data import (  # noqa: F401  (registration)
    celeba,
    census_income,
    cityscapes,
    image_folder,
    multi_digits,
    multi_domain,
    multi_mnist,
    npy_folder,
    nyuv2,
    office,
    penguins,
    qm9,
    synthetic,
    table,
)
from mtlrun.data.base import DATASETS, MultiTaskDataset, TaskSpec, TensorSplit
from mtlrun.data.python_dataset import build_dataset

__all__ = ["DATASETS", "MultiTaskDataset", "TaskSpec", "TensorSplit", "build_dataset"]

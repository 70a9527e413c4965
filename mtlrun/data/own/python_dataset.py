"""Datasets built by your own Python function: ``dataset._target_=my_pkg.my_module.build``.

The function (imported with Hydra's ``get_method``) receives the dataset node's other keys as
keyword arguments and returns either

- a :class:`~mtlrun.data.base.MultiTaskDataset` (full control: your own TaskSpecs), or
- the simple form, a mapping::

      {"tasks": {"y": "classification", "z": {"kind": "regression", "primary": "rmse"}},
       "train": (x_train, {"y": y_train, "z": z_train}),
       "val": (x_val, {...}), "test": (x_test, {...})}

  where ``x`` is an array or tensor (N, ...) used as it is, and each label is a 1-D array of raw
  values (a 2-D 0/1 array for multilabel) encoded exactly like a table column (classes from
  train, regression standardised on train, NaN/None missing; see :mod:`mtlrun.data.formats.columns`).

:func:`build_dataset` is the one place a ``dataset`` config becomes a dataset.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from mtlrun.data.base import DATASETS, MultiTaskDataset, TensorSplit
from mtlrun.errors import ConfigError
from mtlrun.plugins.targets import import_object
from mtlrun.registry import check_options


def _callable(obj: Any) -> str | None:
    return None if callable(obj) else f"{type(obj).__name__} is not a function"


#: a user's dataset (an entry point of ``mtlrun.datasets``; ``_target_`` is read by build_dataset)
DATASETS.accept_plugins(_callable, lambda fn, options: target_arguments(fn, options))


def build_dataset(options: Mapping[str, Any]) -> MultiTaskDataset:
    """The dataset a ``dataset`` config node describes: a registered one, ``_target_``'s, or an
    installed plugin's (an entry point of ``mtlrun.datasets``)."""
    options = dict(options)
    target = options.get("_target_")
    name = options.get("name")
    if target:
        return from_target(str(target), options)
    if name == "python":
        raise ConfigError("dataset=python needs dataset._target_=my_pkg.my_module.build (a function returning data)")
    if name is None:
        raise ConfigError(f"the dataset config has neither 'name' nor '_target_'; choose a name: {DATASETS.names()}")
    if name not in DATASETS:  # a plugin: its function returns data in either form, like _target_'s
        return from_function(DATASETS.get(str(name)), f"dataset={name}", options)
    return DATASETS.build(name, options)


def import_target(target: str) -> Callable[..., Any]:
    """Import ``target``: modules are looked up in the launch folder first, then on ``sys.path``."""
    return import_object(target, "dataset._target_")  # type: ignore[no-any-return]


def target_arguments(fn: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``fn``: the node's keys minus ``name`` and ``_``-keys.

    When ``_target_`` was added on top of a built-in dataset's config, that dataset's own keys
    which ``fn`` does not take are dropped; any other unknown key is an error naming it.
    """
    kwargs = {k: v for k, v in options.items() if k != "name" and not k.startswith("_")}
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    base = options.get("name")
    if base in DATASETS and base != "python":
        inherited = set(inspect.signature(DATASETS.get(base)).parameters)
        kwargs = {k: v for k, v in kwargs.items() if k in params or k not in inherited}
    return check_options(fn, kwargs, prefix="dataset")


def from_target(target: str, options: Mapping[str, Any]) -> MultiTaskDataset:
    fn = import_target(target)
    if not callable(fn):
        raise ConfigError(f"dataset._target_={target} is not a function")
    return from_function(fn, f"dataset._target_={target}", options)


def from_function(fn: Callable[..., Any], where: str, options: Mapping[str, Any]) -> MultiTaskDataset:
    """Call a user's dataset function with the node's options and accept either result form.

    Whatever the function raises is the user's data failing its contract, so it is a
    :class:`ConfigError` naming the function (one line, exit status 2), not a crash of mtlrun.
    """
    arguments = target_arguments(fn, options)
    try:
        result = fn(**arguments)
    except ConfigError:
        raise
    except Exception as ex:
        reason = " ".join(str(ex).split()) or "no message"
        raise ConfigError(f"{where} raised {type(ex).__name__}: {reason}") from ex
    if isinstance(result, MultiTaskDataset):
        return check_dataset(result, where)
    if isinstance(result, Mapping):
        return from_simple(result, where, options.get("name") or "python")
    raise ConfigError(
        f"{where} returned {type(result).__name__}; return a MultiTaskDataset or a mapping "
        "with 'tasks', 'train', 'val', 'test' (see mtlrun.data.own.python_dataset)"
    )


def check_dataset(data: MultiTaskDataset, where: str) -> MultiTaskDataset:
    """Validate a returned MultiTaskDataset; detect missing labels its TaskSpecs must be ready for."""
    if not data.tasks:
        raise ConfigError(f"{where} returned a dataset without tasks")
    missing = False
    for split_name in SPLITS:
        split = data.split(split_name)
        if len(split) == 0:
            raise ConfigError(f"{where}: the {split_name} split is empty")
        for task, spec in data.tasks.items():
            if task not in split.targets:
                raise ConfigError(f"{where}: the {split_name} split has no targets for task {task}")
            absent = ~spec.present(split.targets[task])
            if bool(absent.any()):
                if not spec.masked:
                    raise ConfigError(
                        f"{where}: task {task} has missing labels (NaN or -1) in the {split_name} "
                        "split but its TaskSpec is not masked; build it with masked=True (mtlrun.data.tasks)"
                    )
                missing = True
    check_shapes(data, where)
    data.has_missing_labels = data.has_missing_labels or missing
    return data


def check_shapes(data: MultiTaskDataset, where: str) -> None:
    """Every split's inputs have the dataset's ``input_shape`` and one label per input, so a wrong
    shape is named here rather than failing inside the model after the run started training."""
    expected = tuple(data.input_shape)
    for split_name in SPLITS:
        split = data.split(split_name)
        x = getattr(split, "x", None)
        if not isinstance(x, torch.Tensor):  # a split read lazily (memory-mapped files) checks itself
            continue
        if tuple(x.shape[1:]) != expected:
            raise ConfigError(
                f"{where}: the {split_name} inputs have shape {tuple(x.shape[1:])} per example, "
                f"the dataset's input_shape is {expected}"
            )
        for task, y in split.targets.items():
            if len(y) != len(x):
                raise ConfigError(
                    f"{where}: the {split_name} labels of task {task} have {len(y)} rows, the inputs {len(x)}"
                )


SPLITS = ("train", "val", "test")


def _as_frame(labels: Mapping[str, Any], n: int, where: str) -> Any:
    import pandas as pd

    columns: dict[str, Any] = {}
    for task, y in labels.items():
        array = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if len(array) != n:
            raise ConfigError(f"{where}: labels of task {task} have {len(array)} rows, the inputs {n}")
        named = {f"{task}_{j}": array[:, j] for j in range(array.shape[1])} if array.ndim == 2 else {task: array}
        for column, values in named.items():
            if column in columns:  # a 2-D task t gives t_0, t_1, ...; a task named t_0 would be replaced
                raise ConfigError(f"{where}: the labels of task {task} and another task both make column '{column}'")
            columns[column] = values
    return pd.DataFrame(columns)


def from_simple(result: Mapping[str, Any], where: str, name: str) -> MultiTaskDataset:
    """Convert the simple form (see the module docstring) into a MultiTaskDataset; ``where`` is
    how errors name the function (``dataset._target_=pkg.mod.build`` or ``dataset=NAME``)."""
    from mtlrun.data.formats.columns import encode_tasks, fingerprint, parse_tasks

    target = where.split("=", 1)[1]
    for key in ("tasks", *SPLITS):
        if key not in result:
            raise ConfigError(f"{where} returned a mapping without '{key}'; it needs tasks, train, val, test")
    raw_tasks = dict(result["tasks"])
    inputs, frames = [], []
    for split in SPLITS:
        pair = result[split]
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[1], Mapping)):
            raise ConfigError(f"{where}: '{split}' must be a pair (x, {{task: labels}})")
        x = torch.as_tensor(np.asarray(pair[0]) if not isinstance(pair[0], torch.Tensor) else pair[0])
        if len(x) == 0:
            raise ConfigError(f"{where}: the {split} split is empty")
        inputs.append(x.float())
        frames.append(_as_frame(pair[1], len(x), where))
    declared = {}
    for task, spec in raw_tasks.items():
        spec = {"kind": spec} if isinstance(spec, str) else dict(spec)
        if spec.get("kind") == "multilabel" and "columns" not in spec:
            spec["columns"] = [c for c in frames[0].columns if c.startswith(f"{task}_")]
        declared[task] = spec
    decls = parse_tasks(declared, key=f"{where} tasks")
    specs, targets, info, missing = encode_tasks(decls, frames, target)
    splits = [TensorSplit(x, y) for x, y in zip(inputs, targets)]
    shape = tuple(inputs[0].shape[1:])
    for split, x in zip(SPLITS[1:], inputs[1:]):
        if tuple(x.shape[1:]) != shape:
            raise ConfigError(
                f"{where}: the {split} inputs have shape {tuple(x.shape[1:])} per example, the train inputs {shape}"
            )
    return MultiTaskDataset(
        tasks=specs,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_shape=shape,
        default_encoder="cnn" if len(shape) == 3 else "mlp",
        info={
            "source": target,
            "name": name,
            "sizes": [len(s) for s in splits],
            "tasks": info,
            "fingerprint": fingerprint(splits),
        },
        has_missing_labels=missing,
    )

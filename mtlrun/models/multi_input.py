"""Models for multi-input datasets: which architectures may take one input per task, and input adapters.

An architecture supports multi-input data when task t's output depends only on the shared modules
and t's own (hps, single_task, soft_sharing, branched, mmoe, cgc, mtan): then
``model.forward_task(x_t, t)`` is task t's prediction on its own samples. Architectures that mix
tasks per sample (cross-stitch units combine every task's column on one sample; PLE's shared gates
mix all tasks' experts; DSelect-k's regulariser reads one routing input) need one common input and
are refused at build time with a one-line error (LibMTL likewise refuses cross-stitch and PLE).

When the tasks' inputs differ in shape, the first layer of the network becomes a per-task linear
**input adapter** ``Linear(prod(shape_t), D)`` from task t's flattened input to the common width D
(the largest flattened input size over the dataset's tasks, so no task's input is squeezed), and
the shared encoder reads (D,) vectors. Each adapter belongs to its task (``task_parameters``), so
gradient balancers see it as task-specific; a single-task baseline has the same adapter. When all
tasks' inputs have one shape there are no adapters and any encoder for that shape works.
"""

from __future__ import annotations

from torch import nn

from mtlrun.data.base import MultiTaskDataset
from mtlrun.data.multi_input import MultiInputDataset
from mtlrun.errors import ConfigError
from mtlrun.models.base import ARCHS, MultiTaskModel


def multi_input_archs() -> list[str]:
    """The registered architectures that can take one input per task."""
    return [n for n in ARCHS.names() if getattr(ARCHS.get(n), "supports_multi_input", False)]


def input_adapters(shapes: dict[str, tuple[int, ...]], width: int) -> nn.ModuleDict:
    """One ``Flatten + Linear(prod(shape_t), width)`` per task."""
    adapters = {}
    for task, shape in shapes.items():
        size = 1
        for d in shape:
            size *= int(d)
        adapters[task] = nn.Sequential(nn.Flatten(), nn.Linear(size, width))
    return nn.ModuleDict(adapters)


def prepare_multi_input(model: MultiTaskModel, data: MultiTaskDataset, arch: str) -> None:
    """Check that ``arch`` can read one input per task and add input adapters where shapes differ.

    A no-op for datasets whose tasks share one input.
    """
    if not isinstance(data, MultiInputDataset):
        return
    if not model.supports_multi_input:
        raise ConfigError(
            f"arch={arch} mixes tasks per sample and needs one common input, but this dataset gives each task "
            f"its own inputs; use one of: {', '.join(multi_input_archs())}"
        )
    if data.needs_adapters():
        (width,) = data.input_shape
        model.input_adapters = input_adapters({t: data.input_shapes[t] for t in model.task_names}, int(width))

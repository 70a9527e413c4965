"""Multi-input tasks: each task has its own samples (LibMTL's ``multi_input``).

Office-31 (each domain a task) and multi-corpus NLP set-ups give every task its own inputs.
A :class:`MultiInputSplit` holds one split per task (in memory or streamed, see
:mod:`mtlrun.data.loader`) and keeps the batch contract; its batches are
``{task: (x_t, {task: y_t})}`` mappings (see :mod:`mtlrun.data.batch`).

**Epoch length.** An epoch has as many steps as the largest task has batches,
``max_t ceil(n_t / batch_size)`` (LibMTL's rule for ``multi_input``); each step draws one batch per
task. A smaller task cycles: when its split runs out it starts a new pass, reshuffled by its own
generator. The T per-task generators are seeded from T numbers drawn from the caller's generator,
so the whole epoch is a function of that generator (the trainer seeds it from (seed, epoch)).

Evaluation runs each task on its own split; single-task baselines train on their task's split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from mtlrun.data.base import MultiTaskDataset
from mtlrun.data.batch import Batch


class MultiInputSplit:
    """One split per task; ``batches()`` yields ``{task: (x_t, {task: y_t})}``.

    ``len`` is the total number of samples over the tasks; ``num_batches`` the epoch length (the
    largest task's number of batches).
    """

    def __init__(self, splits: Mapping[str, Any]) -> None:
        self.splits = dict(splits)
        for task, split in self.splits.items():
            if len(split) == 0:
                raise ValueError(f"task {task!r} has an empty split")

    def __len__(self) -> int:
        return sum(len(s) for s in self.splits.values())

    def sizes(self) -> dict[str, int]:
        return {t: len(s) for t, s in self.splits.items()}

    def num_batches(self, batch_size: int) -> int:
        return max(s.num_batches(batch_size) for s in self.splits.values())

    def select(self, tasks: list[str]) -> MultiInputSplit:
        return MultiInputSplit({t: self.splits[t].select([t]) for t in tasks})

    def to(self, device: torch.device) -> MultiInputSplit:
        return self.map(lambda s: s.to(device))

    def map(self, fn: Callable[[Any], Any]) -> MultiInputSplit:
        """The same split with ``fn`` applied to every task's split."""
        return MultiInputSplit({t: fn(s) for t, s in self.splits.items()})

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[dict[str, Batch]]:
        """One batch per task per step, for ``num_batches(batch_size)`` steps; smaller tasks cycle."""
        steps = self.num_batches(batch_size)
        streams = {}
        for task, split in self.splits.items():
            own = None
            if shuffle:
                seed = int(torch.randint(0, 2**62, (1,), generator=generator))
                own = torch.Generator().manual_seed(seed)
            streams[task] = _cycle(split, batch_size, shuffle, own)
        for _ in range(steps):
            yield {task: next(stream) for task, stream in streams.items()}


def _cycle(split: Any, batch_size: int, shuffle: bool, generator: torch.Generator | None) -> Iterator[Batch]:
    """The split's batches, pass after pass (each pass reshuffled by ``generator``)."""
    while True:
        yield from split.batches(batch_size, shuffle=shuffle, generator=generator)


@dataclass
class MultiInputDataset(MultiTaskDataset):
    """A dataset whose splits are :class:`MultiInputSplit` s.

    ``input_shapes`` is each task's example shape. ``input_shape`` is what the shared encoder
    reads: the common shape when all tasks agree, else ``(D,)`` with D the largest flattened input
    size, reached through a per-task linear input adapter (see ``mtlrun.models.multi_input``).
    Both describe every task of the dataset and stay unchanged by :meth:`select`, so a task's
    network (adapter width, encoder) is the same in any task set and in its single-task baseline.
    """

    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def needs_adapters(self) -> bool:
        """Whether the tasks' inputs differ in shape (then every task gets an input adapter)."""
        return len(set(map(tuple, self.input_shapes.values()))) > 1

    def select(self, names: list[str]) -> MultiInputDataset:
        return MultiInputDataset(
            tasks={n: self.tasks[n] for n in names},
            train=self.train.select(names),
            val=self.val.select(names),
            test=self.test.select(names),
            input_shape=self.input_shape,
            default_encoder=self.default_encoder,
            info=self.info,
            has_missing_labels=self.has_missing_labels,
            encoder_context=self.encoder_context,
            input_shapes=self.input_shapes,
        )


def common_input_shape(shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The shared encoder's input shape: the tasks' common shape, else the largest flattened size."""
    distinct = set(map(tuple, shapes.values()))
    if len(distinct) == 1:
        return next(iter(distinct))
    return (max(int(torch.Size(s).numel()) for s in distinct),)


def is_multi_input(data_or_split: Any) -> bool:
    """Whether a dataset or split gives each task its own inputs."""
    return isinstance(data_or_split, (MultiInputDataset, MultiInputSplit))

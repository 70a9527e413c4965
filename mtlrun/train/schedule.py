"""Task scheduling: per-task loss multipliers ``m_t(epoch)`` in [0, 1].

The trainer multiplies each task loss by ``m_t(epoch)`` before the balancer sees it (the step's
losses and every loss closure it hands the balancer), so a schedule composes with any balancer
and no balancer knows about it. Multipliers are constant within an epoch and logged per epoch
(metric ``schedule`` in ``metrics.jsonl``).

- ``none``: every task from the start, the trainer does not scale anything.
- ``curriculum``: tasks enter at given epochs (``start_epochs``), or easiest first by a short
  single-task warm-up (``order=difficulty``, what ``order=auto`` does when no entry epochs are
  given), each ramped in linearly over ``ramp_epochs``. Its defaults schedule something: a
  curriculum in which every task starts at epoch 1 would be ``none`` under another name.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from mtlrun.data.base import MultiTaskDataset
from mtlrun.data.batch import batch_losses
from mtlrun.errors import ConfigError
from mtlrun.registry import Registry, positive

log = logging.getLogger("mtlrun")

SCHEDULES: Registry[TaskSchedule] = Registry("schedule")


@dataclass
class ScheduleProbe:
    """What a schedule may use once before training: the initial model, the data and a fresh optimizer."""

    model: nn.Module
    data: MultiTaskDataset
    batch_size: int
    seed: int
    #: a new optimizer of the run's kind and settings over the given parameters
    make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer]


class TaskSchedule:
    """Base class: every task fully weighted from the first epoch.

    ``epochs`` is the run's ``trainer.epochs``, for schedules that spread themselves over training.
    """

    def __init__(self, tasks: Sequence[str], *, epochs: int | None = None) -> None:
        self.tasks = list(tasks)
        self.epochs = epochs

    def prepare(self, probe: ScheduleProbe) -> None:
        """Called once before the first epoch (e.g. to measure task difficulty)."""

    def multipliers(self, epoch: int) -> dict[str, float] | None:
        """``{task: m_t(epoch)}`` in [0, 1]; ``None`` means no scaling at all."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What :meth:`prepare` decided (a resumed run restores it instead of preparing again)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back :meth:`state_dict`."""


@SCHEDULES.register("none")
class NoSchedule(TaskSchedule):
    """All tasks from the start, unscaled."""


def linear_ramp(epoch: int, start: int, ramp_epochs: int) -> float:
    """0 before ``start``; then ``(epoch - start + 1) / ramp_epochs`` capped at 1 (1 at once if ``ramp_epochs=0``)."""
    if epoch < start:
        return 0.0
    if ramp_epochs == 0:
        return 1.0
    return min(1.0, (epoch - start + 1) / ramp_epochs)


@SCHEDULES.register("curriculum")
class Curriculum(TaskSchedule):
    """Tasks enter training one after another, each with a linear warm-up of its loss weight.

    ``m_t(e) = 0`` for ``e < s_t`` and ``min(1, (e - s_t + 1) / ramp_epochs)`` from the entry epoch
    ``s_t`` on (1 at once when ``ramp_epochs=0``); tasks present from epoch 1 are not ramped. Entry
    epochs come from ``start_epochs`` (tasks not named enter at epoch 1), or with ``order=difficulty``
    from a ranking of the tasks easiest first: the k-th easiest task (k = 0, 1, ...) enters at epoch
    ``1 + k * stagger``.

    Difficulty is measured before training, from the run's initial weights: a copy of the model is
    trained on task t alone for ``warmup_steps`` steps (the run's optimizer, batch size and seed)
    and the task's loss on one fixed training batch is compared before and after. The relative
    decrease ``(L_before - L_after) / L_before`` is scale-free across loss types; the larger it is,
    the easier the task (curriculum learning in the sense of Bengio et al., ICML 2009).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        start_epochs: Mapping[str, int] | None = None,
        order: Literal["auto", "epochs", "difficulty"] = "auto",
        stagger: int | Literal["auto"] = "auto",
        ramp_epochs: int = 0,
        warmup_steps: int = 20,
        *,
        epochs: int | None = None,
    ) -> None:
        super().__init__(tasks, epochs=epochs)
        start_epochs = dict(start_epochs or {})
        if order not in ("auto", "epochs", "difficulty"):
            raise ConfigError(f"schedule.order={order} is not valid; choose one of: auto, difficulty, epochs")
        if order == "auto":
            order = "epochs" if start_epochs else "difficulty"
        if order == "difficulty" and len(self.tasks) > 1 and epochs == 1:
            raise ConfigError(
                "schedule=curriculum with trainer.epochs=1 schedules nothing (every task must start at epoch 1); "
                "use trainer.epochs >= 2 or schedule=none"
            )
        if stagger != "auto" and (not isinstance(stagger, int) or isinstance(stagger, bool)):
            raise ConfigError(f"schedule.stagger={stagger!r} must be a positive integer or auto")
        unknown = sorted(set(start_epochs) - set(self.tasks))
        if unknown:
            raise ConfigError(
                f"schedule.start_epochs names task(s) {', '.join(unknown)} not in the task set; "
                f"valid: {', '.join(self.tasks)}"
            )
        for task, epoch in start_epochs.items():
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
                raise ConfigError(f"schedule.start_epochs.{task}={epoch!r} must be an integer >= 1")
        if order == "difficulty" and start_epochs:
            raise ConfigError("schedule.start_epochs cannot be combined with schedule.order=difficulty")
        positive("schedule", warmup_steps=warmup_steps, **({} if stagger == "auto" else {"stagger": stagger}))
        if ramp_epochs < 0:
            raise ConfigError(f"schedule.ramp_epochs={ramp_epochs} must be >= 0")
        self.order = order
        self.stagger, self.ramp_epochs, self.warmup_steps = stagger, ramp_epochs, warmup_steps
        self.start = {t: start_epochs.get(t, 1) for t in self.tasks}
        if order == "epochs" and min(self.start.values()) != 1:
            raise ConfigError("schedule.start_epochs leaves epoch 1 without tasks; at least one task must start at 1")
        #: the measured relative loss decrease per task (order=difficulty), for the log
        self.difficulty: dict[str, float] = {}

    def prepare(self, probe: ScheduleProbe) -> None:
        if self.order != "difficulty":
            return
        self.difficulty = warmup_loss_decrease(probe, self.tasks, self.warmup_steps)
        ranked = sorted(self.tasks, key=lambda t: -self.difficulty[t])  # stable: ties keep task order
        self.start = dict(zip(ranked, self.entry_epochs(len(ranked))))
        log.info(
            "curriculum: relative loss decrease after %d warm-up steps %s; entry epochs %s",
            self.warmup_steps,
            ", ".join(f"{t}={self.difficulty[t]:.3f}" for t in ranked),
            ", ".join(f"{t}={self.start[t]}" for t in ranked),
        )

    def entry_epochs(self, count: int) -> list[int]:
        """The entry epoch of the k-th easiest of ``count`` tasks (k = 0, 1, ...)."""
        if self.stagger != "auto":
            return [1 + k * int(self.stagger) for k in range(count)]
        if count < 2:
            return [1] * count
        span = max(1, (self.epochs or 2) // 2)
        return [1 + math.ceil(k * span / (count - 1)) for k in range(count)]

    def state_dict(self) -> dict[str, Any]:
        return {"start": dict(self.start), "difficulty": dict(self.difficulty)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.start = {t: int(state["start"][t]) for t in self.tasks}
        self.difficulty = {t: float(v) for t, v in state.get("difficulty", {}).items()}

    def multipliers(self, epoch: int) -> dict[str, float]:
        # tasks present from the first epoch enter nothing, so they are not ramped
        return {
            t: 1.0 if self.start[t] == 1 else linear_ramp(epoch, self.start[t], self.ramp_epochs) for t in self.tasks
        }


def warmup_loss_decrease(probe: ScheduleProbe, tasks: Sequence[str], steps: int) -> dict[str, float]:
    """``{task: (L_before - L_after) / L_before}`` after ``steps`` single-task steps on a model copy.

    Runs under a forked RNG so the run itself draws the same random numbers with or without it.
    """
    data, specs = probe.data, probe.data.tasks
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    decrease: dict[str, float] = {}
    with torch.random.fork_rng(devices=devices):
        probe_gen = torch.Generator().manual_seed(probe.seed)
        first = next(data.train.batches(probe.batch_size, shuffle=True, generator=probe_gen))
        for task in tasks:
            torch.manual_seed(probe.seed)
            model = copy.deepcopy(probe.model)
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = probe.make_optimizer(params)
            loss_fn = {task: specs[task].loss}
            with torch.no_grad():
                before = float(batch_losses(model, loss_fn, first)[task])
            order = torch.Generator().manual_seed(probe.seed)
            batches = data.train.batches(probe.batch_size, shuffle=True, generator=order)
            for _ in range(steps):
                batch = next(batches, None)
                if batch is None:
                    batches = data.train.batches(probe.batch_size, shuffle=True, generator=order)
                    batch = next(batches)
                optimizer.zero_grad(set_to_none=True)
                batch_losses(model, loss_fn, batch)[task].backward()
                optimizer.step()
            with torch.no_grad():
                after = float(batch_losses(model, loss_fn, first)[task])
            decrease[task] = (before - after) / before if before > 0 else 0.0
    return decrease

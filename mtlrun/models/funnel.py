"""Which of a run's tasks are the steps of a conversion funnel (impression -> click -> conversion).

ESMM and AITM model tasks that follow one another: a conversion needs a click, so p(conversion)
can be no larger than p(click). They are told which task is which by typed options
(``arch.ctr_task``/``arch.cvr_task``, ``arch.tasks_order``); by default the binary tasks in the
order the dataset declares them. Every mistake is one line naming the valid task names.
"""

from __future__ import annotations

from collections.abc import Sequence

from mtlrun.data.base import TaskSpec
from mtlrun.errors import ConfigError, choices_error


def binary_tasks(tasks: Sequence[TaskSpec]) -> list[str]:
    """The binary tasks among ``tasks``, in their declared order."""
    return [t.name for t in tasks if t.kind == "binary"]


def funnel(arch: str, tasks: Sequence[TaskSpec], chosen: dict[str, str | None]) -> list[str]:
    """The tasks named by the options ``chosen`` (``{option: task or None}``, in funnel order), each a
    distinct binary task of the run; an option left None takes the next unchosen binary task."""
    binary = binary_tasks(tasks)
    if len(binary) < len(chosen):
        kinds = ", ".join(f"{t.name} ({t.kind})" for t in tasks)
        raise ConfigError(
            f"arch={arch} needs {len(chosen)} binary tasks (e.g. click and conversion); this run has {kinds}"
        )
    picked: list[str] = []
    for option, name in chosen.items():
        if name is not None:
            if name not in binary:
                raise choices_error(f"arch.{option}", name, binary)
            if name in picked:
                raise ConfigError(f"arch.{option}={name} is already another step of the funnel; choose from {binary}")
        picked.append(name)  # type: ignore[arg-type]
    spare = iter(t for t in binary if t not in picked)
    return [name if name is not None else next(spare) for name in picked]


def ordered_tasks(arch: str, tasks: Sequence[TaskSpec], order: Sequence[str] | None) -> list[str]:
    """``arch.tasks_order``: at least two distinct binary tasks of the run, first step first
    (default: every binary task in declared order)."""
    binary = binary_tasks(tasks)
    if order is None:
        order = binary
    order = [str(t) for t in order]
    for name in order:
        if name not in binary:
            raise choices_error("arch.tasks_order", name, binary)
    if len(set(order)) != len(order):
        raise ConfigError(f"arch.tasks_order={order} lists a task twice")
    if len(order) < 2:
        kinds = ", ".join(f"{t.name} ({t.kind})" for t in tasks)
        raise ConfigError(f"arch={arch} needs at least two binary tasks in arch.tasks_order; this run has {kinds}")
    return order

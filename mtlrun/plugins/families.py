"""The families a user component can belong to: config group, entry-point group, and the
constructor arguments mtlrun passes itself (never user options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mtlrun.config.generate import GROUPS


@dataclass(frozen=True)
class Family:
    #: the config group (``balancer``) and the entry-point group a package declares (``mtlrun.balancers``)
    group: str
    entry_points: str
    #: constructor arguments the code passes (``tasks``, ``input_shape``); not options
    context: tuple[str, ...]
    #: what a component of this family is, for error messages
    contract: str


def _context(group: str) -> tuple[str, ...]:
    return GROUPS[group][1] if group in GROUPS else ()


FAMILIES: dict[str, Family] = {
    family.group: family
    for family in (
        Family(
            "dataset",
            "mtlrun.datasets",
            _context("dataset"),
            "a function (or class) returning a mtlrun.data.MultiTaskDataset or the simple mapping",
        ),
        Family(
            "encoder",
            "mtlrun.encoders",
            _context("encoder"),
            "a mtlrun.models.StagedEncoder subclass (or a function returning one) taking input_shape",
        ),
        Family(
            "arch", "mtlrun.archs", _context("arch"), "a mtlrun.models.MultiTaskModel subclass taking encoder, tasks"
        ),
        Family(
            "balancer",
            "mtlrun.balancers",
            _context("balancer"),
            "a mtlrun.balancers.LossWeighting or GradientAggregator subclass taking tasks",
        ),
        Family(
            "metric",
            "mtlrun.metrics",
            (),
            "a torchmetrics.Metric subclass (or a function returning one) that declares higher_is_better",
        ),
    )
}


def registry_of(group: str) -> Any:
    """The family's Registry (``mtlrun.balancers:BALANCERS``), imported by name as
    :mod:`mtlrun.config.generate` does: this package sits below the families it serves."""
    import importlib

    module, _, name = GROUPS[group][0].partition(":")
    return getattr(importlib.import_module(module), name)


#: the config groups whose choice can be a user component (metrics are named inside dataset.tasks)
COMPONENT_GROUPS = ("dataset", "encoder", "arch", "balancer")
#: the choice that stands for "the class named by ``_target_``"
TARGET_CHOICE = "python"

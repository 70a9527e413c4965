"""Every built-in metric declares its direction (read before training, without building it): the
declaration must match what the built metric says."""

from __future__ import annotations

import pytest

from mtlrun.data.base import MetricFactory
from mtlrun.data.dense_tasks import depth_task, normal_task, pixel_regression_task, segmentation_task
from mtlrun.data.tasks import METRIC_CATALOG, binary_task, classification_task, declared_task, regression_task

SPECS = [
    classification_task("c", 3),
    binary_task("b"),
    regression_task("r"),
    segmentation_task("s", 4),
    depth_task(),
    normal_task(),
    pixel_regression_task("p"),
    *(declared_task(f"d_{kind}", kind, 3, metrics=list(METRIC_CATALOG[kind])) for kind in METRIC_CATALOG),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_declared_directions_match_the_built_metrics(spec):
    for name, factory in spec.metrics.items():
        assert isinstance(factory, MetricFactory), f"{spec.name}/{name} does not declare its direction"
        assert factory.higher_is_better == bool(factory().higher_is_better), f"{spec.name}/{name}"
    assert spec.metric_directions() == {n: bool(f().higher_is_better) for n, f in spec.metrics.items()}


def test_a_plain_factory_is_built_to_read_its_direction():
    class Metric:
        higher_is_better = False

    spec = classification_task("c", 3)
    spec.metrics = {"loss": Metric}
    assert spec.metric_directions() == {"loss": False}

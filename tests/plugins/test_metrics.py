"""A user's metric in a task's metrics list: built with the task's size, its direction declared."""

from __future__ import annotations

import textwrap

import pytest

from mtlrun.data.tasks import declared_task
from mtlrun.errors import ConfigError

MODULE = textwrap.dedent(
    """
    import torch
    from torchmetrics import Metric

    class TopClassShare(Metric):
        higher_is_better = True

        def __init__(self, num_classes: int, weight: float = 1.0):
            super().__init__()
            self.num_classes = num_classes
            self.add_state("hits", default=torch.tensor(0.0), dist_reduce_fx="sum")
            self.add_state("n", default=torch.tensor(0.0), dist_reduce_fx="sum")

        def update(self, preds, target):
            self.hits += (preds.argmax(-1) == self.num_classes - 1).sum()
            self.n += len(target)

        def compute(self):
            return self.hits / self.n

    def lower_is_better_factory():
        from torchmetrics import MeanSquaredError
        return MeanSquaredError()

    class NeedsMore(TopClassShare):
        def __init__(self, num_classes: int, colour: str):
            super().__init__(num_classes)
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    monkeypatch.delitem(__import__("sys").modules, "my_metrics", raising=False)


def test_a_metric_class_gets_the_tasks_size_and_its_declared_direction(user_module):
    spec = declared_task("y", "classification", 3, metrics=["accuracy", "my_metrics.TopClassShare"])
    assert list(spec.metrics) == ["accuracy", "TopClassShare"]  # named by its last part in results
    assert spec.metric_directions() == {"accuracy": True, "TopClassShare": True}
    metric = spec.metrics["TopClassShare"]()
    assert metric.num_classes == 3


def test_a_factory_function_and_the_primary_by_import_path(user_module):
    spec = declared_task(
        "y",
        "regression",
        metrics=["mae", "my_metrics.lower_is_better_factory"],
        primary="my_metrics.lower_is_better_factory",
    )
    assert spec.primary == "lower_is_better_factory"
    assert spec.metric_directions()["lower_is_better_factory"] is False


def test_a_metric_needing_an_argument_mtlrun_cannot_give_is_refused(user_module):
    with pytest.raises(ConfigError, match="my_metrics.NeedsMore needs colour, which mtlrun cannot give"):
        declared_task("y", "classification", 3, metrics=["my_metrics.NeedsMore"])


def test_an_unknown_plain_name_still_lists_the_built_in_metrics():
    with pytest.raises(ConfigError, match="dataset.tasks.y.metrics=brierr is not valid; choose one of: accuracy"):
        declared_task("y", "binary", metrics=["brierr"])

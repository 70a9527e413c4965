"""GAUC and log loss: known answers, directions, and the evaluator's conditional (given) metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mtlrun.data.base import GROUP_KEY, TensorSplit, given_key
from mtlrun.data.rec_metrics import GroupAUC, LogLoss, group_auc
from mtlrun.data.tasks import declared_task
from mtlrun.train.evaluate import TaskEvaluator


def test_gauc_weights_each_users_auc_by_impressions_and_skips_one_class_users():
    # user 0: 4 rows, ranks positives above negatives except one pair -> AUC 3/4
    # user 1: 2 rows, perfectly ranked -> AUC 1; user 2: only negatives -> skipped
    preds = np.array([0.9, 0.2, 0.5, 0.1, 0.3, 0.8, 0.7, 0.6])
    target = np.array([1, 1, 0, 0, 0, 1, 0, 0])
    groups = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    expected = (4 * 0.75 + 2 * 1.0) / 6
    assert group_auc(preds, target, groups) == pytest.approx(expected)
    # plain AUC over every row differs: it also ranks users against users
    assert group_auc(preds, target, np.zeros(8, dtype=int)) != pytest.approx(expected)


def test_gauc_counts_ties_as_one_half_and_is_nan_without_a_usable_group():
    assert group_auc(np.array([0.5, 0.5]), np.array([1, 0]), np.array([3, 3])) == pytest.approx(0.5)
    assert math.isnan(group_auc(np.array([0.1, 0.9]), np.array([1, 0]), np.array([0, 1])))


def test_metric_objects_accumulate_batches_and_declare_direction():
    metric = GroupAUC()
    assert metric.higher_is_better and not LogLoss().higher_is_better
    preds = torch.tensor([0.9, 0.2, 0.5, 0.1, 0.3, 0.8])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    metric.update(preds[:3], target[:3], groups=groups[:3])
    metric.update(preds[3:], target[3:], groups=groups[3:])
    assert float(metric.compute()) == pytest.approx((4 * 0.75 + 2 * 1.0) / 6)
    loss = LogLoss()
    loss.update(torch.tensor([0.8, 0.25]), torch.tensor([1.0, 0.0]))
    assert float(loss.compute()) == pytest.approx(-(math.log(0.8) + math.log(0.75)) / 2, rel=1e-6)


class Fixed(nn.Module):
    """Outputs given logits (column 0 of x indexes them); ``given_output`` returns other logits."""

    def __init__(self, outputs: dict[str, Tensor], given: Tensor | None = None) -> None:
        super().__init__()
        self.outputs, self.given = outputs, given

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        rows = x[:, 0].long()
        return {t: v[rows] for t, v in self.outputs.items()}

    def given_output(self, task: str, x: Tensor, outputs: dict[str, Tensor]) -> Tensor:
        return self.given[x[:, 0].long()] if self.given is not None else outputs[task]


def logit(p: list[float]) -> Tensor:
    q = torch.tensor(p)
    return torch.log(q / (1 - q)).unsqueeze(1)


def test_evaluator_scores_given_metrics_on_the_positive_rows_with_the_models_conditional_output():
    click = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    buy = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    spec = declared_task("buy", "binary", metrics=["auroc", "gauc", "logloss"], given="click")
    assert list(spec.metrics) == [
        "auroc", "gauc", "logloss", "auroc_given_click", "gauc_given_click", "logloss_given_click"
    ]  # fmt: skip
    assert spec.given_metrics() == ["auroc_given_click", "gauc_given_click", "logloss_given_click"]
    ctcvr = logit([0.5, 0.2, 0.1, 0.3, 0.05, 0.01])  # on every row: the buy ranks below unclicked row 3
    cvr = logit([0.2, 0.6, 0.1, 0.9, 0.9, 0.9])  # among clicked rows: the buy ranks second of three
    split = TensorSplit(
        torch.arange(6).float().unsqueeze(1), {"buy": buy, given_key("click"): click, GROUP_KEY: groups}
    )
    metrics, _ = TaskEvaluator({"buy": spec}, torch.device("cpu")).evaluate(Fixed({"buy": ctcvr}, cvr), split, 4)
    got = metrics["buy"]
    assert got["auroc"] == pytest.approx(1.0)  # the buy row has the highest pCTCVR of all six
    assert got["auroc_given_click"] == pytest.approx(0.5)  # rows 0..2 only, scored with pCVR
    assert got["gauc_given_click"] == pytest.approx(0.5)  # one usable user (0)
    assert got["gauc"] == pytest.approx(1.0)  # user 1 has no buy: skipped
    p = torch.tensor([0.2, 0.6, 0.1])
    expected = -(torch.log(p[0]) + torch.log(1 - p[1]) + torch.log(1 - p[2])) / 3
    assert got["logloss_given_click"] == pytest.approx(float(expected), rel=1e-5)
    # a model without a conditional output is scored with its own output on those rows
    plain, _ = TaskEvaluator({"buy": spec}, torch.device("cpu")).evaluate(Fixed({"buy": ctcvr}), split, 4)
    assert plain["buy"]["auroc_given_click"] == pytest.approx(1.0)


def test_side_entries_survive_selecting_a_task_set():
    split = TensorSplit(torch.zeros(3, 1), {"a": torch.ones(3), "b": torch.ones(3), GROUP_KEY: torch.arange(3)})
    assert set(split.select(["a"]).targets) == {"a", GROUP_KEY}

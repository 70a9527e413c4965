"""Evaluation gathers metric inputs over batches: chunked updates give the per-batch metrics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlrun.data.base import TensorSplit
from mtlrun.data.tasks import binary_task, classification_task, regression_task
from mtlrun.train import evaluate


class Heads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.heads = nn.ModuleDict({"c": nn.Linear(8, 3), "b": nn.Linear(8, 1), "r": nn.Linear(8, 1)})

    def forward(self, x):
        h = torch.relu(self.body(x))
        return {t: head(h) for t, head in self.heads.items()}


def test_chunked_metric_updates_match_one_update_per_batch(monkeypatch):
    torch.manual_seed(0)
    n = 70
    split = TensorSplit(
        torch.randn(n, 6),
        {"c": torch.randint(0, 3, (n,)), "b": torch.randint(0, 2, (n,)).float(), "r": torch.randn(n) * 3},
    )
    tasks = {"c": classification_task("c", 3), "b": binary_task("b"), "r": regression_task("r", shift=0.5, scale=3.0)}
    model = Heads()
    gathered, gathered_loss = evaluate.TaskEvaluator(tasks, torch.device("cpu")).evaluate(model, split, 16)
    monkeypatch.setattr(evaluate, "CHUNK_ELEMENTS", 1)  # every batch is its own update
    per_batch, per_batch_loss = evaluate.TaskEvaluator(tasks, torch.device("cpu")).evaluate(model, split, 16)
    assert gathered.keys() == per_batch.keys() == tasks.keys()
    for task, metrics in per_batch.items():
        assert set(metrics) == set(tasks[task].metrics)
        for name, value in metrics.items():
            assert gathered[task][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (task, name)
    assert gathered_loss == pytest.approx(per_batch_loss)
    # reference values by hand for two of them
    with torch.no_grad():
        out = model(split.x)
    accuracy = float((out["c"].argmax(1) == split.targets["c"]).float().mean())
    mae = float((out["r"].squeeze(-1) * 3.0 + 0.5 - split.targets["r"]).abs().mean())
    assert gathered["c"]["accuracy"] == pytest.approx(accuracy) and gathered["r"]["mae"] == pytest.approx(mae, rel=1e-5)


def test_score_of_gathered_pairs_equals_the_evaluation_and_forgets_the_last_one():
    torch.manual_seed(1)
    n = 40
    split = TensorSplit(torch.randn(n, 6), {"c": torch.randint(0, 3, (n,)), "b": torch.randint(0, 2, (n,)).float()})
    tasks = {"c": classification_task("c", 3), "b": binary_task("b")}
    model = Heads()
    evaluator = evaluate.TaskEvaluator(tasks, torch.device("cpu"))
    metrics, _ = evaluator.evaluate(model, split, 16)
    with torch.no_grad():
        out = model(split.x)
    pairs = {t: [tasks[t].metric_inputs(out[t], split.targets[t])] for t in tasks}
    scored = evaluator.score(pairs)  # the evaluation's own state is reset first
    for task in tasks:
        assert scored[task] == pytest.approx(metrics[task], rel=1e-6)
    half = {t: [tasks[t].metric_inputs(out[t][:20], split.targets[t][:20])] for t in tasks}
    assert evaluator.score(half)["c"]["accuracy"] == pytest.approx(
        float((out["c"][:20].argmax(1) == split.targets["c"][:20]).float().mean())
    )

"""Missing labels: losses over the present labels, metrics on the present subset, zero gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, R2Score
from torchmetrics.classification import BinaryAUROC, MulticlassAccuracy, MultilabelAccuracy

from mtlrun.data.base import MultiTaskDataset, TensorSplit, present_tasks
from mtlrun.data.tasks import declared_task
from mtlrun.train.evaluate import TaskEvaluator

NAN = float("nan")


def test_masked_losses_equal_the_loss_over_present_labels():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=g)
    classes = torch.tensor([2, -1, 0, 1, -1, 2])
    keep = classes >= 0
    spec = declared_task("c", "classification", 3, masked=True)
    assert torch.allclose(spec.loss(logits, classes), F.cross_entropy(logits[keep], classes[keep]))

    out = torch.randn(6, 1, generator=g)
    flags = torch.tensor([1.0, NAN, 0.0, 0.0, NAN, 1.0])
    keep = ~torch.isnan(flags)
    binary = declared_task("b", "binary", masked=True)
    hand = F.binary_cross_entropy_with_logits(out[keep, 0], flags[keep])
    assert torch.allclose(binary.loss(out, flags), hand)

    values = torch.tensor([3.0, 5.0, NAN, 9.0, NAN, 1.0])
    keep = ~torch.isnan(values)
    reg = declared_task("r", "regression", masked=True, shift=4.0, scale=2.0)
    hand = ((out[keep, 0] - (values[keep] - 4.0) / 2.0) ** 2).mean()
    assert torch.allclose(reg.loss(out, values), hand)

    scores = torch.randn(4, 2, generator=g)
    tags = torch.tensor([[1.0, NAN], [0.0, 1.0], [NAN, NAN], [1.0, 0.0]])
    keep = ~torch.isnan(tags)
    multi = declared_task("m", "multilabel", 2, masked=True)
    hand = F.binary_cross_entropy_with_logits(scores[keep], tags[keep])
    assert torch.allclose(multi.loss(scores, tags), hand)


@pytest.mark.parametrize(
    ("kind", "size", "output", "target"),
    [
        ("classification", 3, torch.randn(5, 3), torch.tensor([1, -1, 2, 2, -1])),
        ("binary", 1, torch.randn(5, 1), torch.tensor([1.0, NAN, 0.0, 1.0, NAN])),
        ("regression", 1, torch.randn(5, 1), torch.tensor([2.0, NAN, -1.0, NAN, 3.0])),
    ],
)
def test_a_batch_without_labels_gives_an_exact_zero_with_a_graph(kind, size, output, target):
    spec = declared_task("t", kind, size, masked=True)
    missing = torch.full_like(target, -1) if kind == "classification" else torch.full_like(target, NAN)
    out = output.clone().requires_grad_(True)
    loss = spec.loss(out, missing)
    assert loss.item() == 0.0 and loss.requires_grad
    (grad,) = torch.autograd.grad(loss, out)
    assert torch.equal(grad, torch.zeros_like(out))
    # the present labels alone get gradient
    (grad,) = torch.autograd.grad(spec.loss(out, target), out)
    absent = ~spec.present(target)
    assert torch.equal(grad[absent], torch.zeros_like(grad[absent])) and grad[~absent].abs().sum() > 0


def test_present_tasks_flags_tasks_with_a_label_in_the_batch():
    tasks = {
        "c": declared_task("c", "classification", 3, masked=True),
        "r": declared_task("r", "regression", masked=True),
        "d": declared_task("d", "binary"),
    }
    targets = {"c": torch.tensor([-1, -1]), "r": torch.tensor([NAN, 1.0]), "d": torch.tensor([0.0, 1.0])}
    assert present_tasks(tasks, targets, ["c", "r", "d"]).tolist() == [False, True, True]


class _Fixed(torch.nn.Module):
    """Returns stored outputs batch by batch (the evaluator sees exactly these predictions)."""

    def __init__(self, outputs: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.outputs, self.start = outputs, 0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n = x.shape[0]
        out = {t: o[self.start : self.start + n] for t, o in self.outputs.items()}
        self.start += n
        return out


def test_masked_metrics_equal_torchmetrics_on_the_present_subset():
    g = torch.Generator().manual_seed(1)
    n = 10
    targets = {
        "c": torch.tensor([0, 1, -1, 2, 2, -1, -1, -1, 1, 0]),  # batch 2 (rows 4-7) nearly empty
        "b": torch.tensor([1.0, 0.0, NAN, 1.0, NAN, NAN, NAN, NAN, 0.0, 1.0]),  # batch 2 has none
        "r": torch.tensor([1.0, 2.0, 3.0, NAN, 5.0, NAN, 7.0, 8.0, NAN, 10.0]),
        "m": torch.tensor([[1.0, 0.0], [NAN, 1.0]] * 5),
    }
    outputs = {
        "c": torch.randn(n, 3, generator=g),
        "b": torch.randn(n, 1, generator=g),
        "r": torch.randn(n, 1, generator=g),
        "m": torch.randn(n, 2, generator=g),
    }
    specs = {
        "c": declared_task("c", "classification", 3, masked=True),
        "b": declared_task("b", "binary", masked=True),
        "r": declared_task("r", "regression", masked=True, shift=5.0, scale=3.0),
        "m": declared_task("m", "multilabel", 2, masked=True),
    }
    split = TensorSplit(torch.zeros(n, 1), targets)
    metrics, losses = TaskEvaluator(specs, torch.device("cpu")).evaluate(_Fixed(outputs), split, batch_size=4)
    keep = targets["c"] >= 0
    assert metrics["c"]["accuracy"] == pytest.approx(
        float(MulticlassAccuracy(num_classes=3, average="micro")(outputs["c"][keep], targets["c"][keep]))
    )
    keep = ~torch.isnan(targets["b"])
    probs = torch.sigmoid(outputs["b"][keep, 0])
    assert metrics["b"]["auroc"] == pytest.approx(float(BinaryAUROC()(probs, targets["b"][keep].long())))
    keep = ~torch.isnan(targets["r"])
    preds = outputs["r"][keep, 0] * 3.0 + 5.0
    assert metrics["r"]["mae"] == pytest.approx(float(MeanAbsoluteError()(preds, targets["r"][keep])))
    assert metrics["r"]["r2"] == pytest.approx(float(R2Score()(preds, targets["r"][keep])))
    m_target = torch.where(torch.isnan(targets["m"]), -1.0, targets["m"]).long()
    expected = MultilabelAccuracy(num_labels=2, average="micro", ignore_index=-1)(torch.sigmoid(outputs["m"]), m_target)
    assert metrics["m"]["accuracy"] == pytest.approx(float(expected))
    # the mean loss is over present labels, whatever the batches
    keep = targets["r"].isnan().logical_not()
    hand = ((outputs["r"][keep, 0] - (targets["r"][keep] - 5.0) / 3.0) ** 2).mean()
    assert losses["r"] == pytest.approx(float(hand), rel=1e-5)


def test_trainer_sets_present_and_balancers_get_zero_loss_for_an_unlabelled_task():
    from mtlrun.balancers.weighting import EqualWeighting
    from mtlrun.models import ARCHS, EncoderSpec
    from mtlrun.train.loop import Trainer
    from mtlrun.train.optimizers import build_optimizer

    specs = {"c": declared_task("c", "classification", 2, masked=True), "r": declared_task("r", "regression")}
    x = torch.randn(8, 3)
    split = TensorSplit(x, {"c": torch.full((8,), -1), "r": torch.randn(8)})
    data = MultiTaskDataset(specs, split, split, split, (3,), "mlp", has_missing_labels=True)
    torch.manual_seed(0)
    model = ARCHS.build("hps", {}, encoder=EncoderSpec("mlp", (3,), {"hidden": [4]}), tasks=list(specs.values()))
    seen = {}

    class Spy(EqualWeighting):
        def backward(self, losses, ctx):
            seen["present"], seen["c"] = ctx.present.clone(), losses["c"].detach().clone()
            params = [*model.shared_parameters(), model.heads["c"].weight]
            seen["grad_c"] = torch.autograd.grad(losses["c"], params, retain_graph=True)
            return super().backward(losses, ctx)

    balancer = Spy(["c", "r"])
    optimizer = build_optimizer("sgd", [{"params": list(model.parameters())}], 0.1, 0.0, 0.0)
    trainer = Trainer(
        model, balancer, data, optimizer=optimizer, epochs=1, batch_size=8, grad_clip=0.0, seed=0,
        device=torch.device("cpu"), primary={"c": "accuracy", "r": "mae"},
    )  # fmt: skip
    trainer.training_step([next(data.train.batches(8))], 1, 0.1)
    assert seen["present"].tolist() == [False, True]
    assert seen["c"].item() == 0.0
    assert all(torch.equal(g, torch.zeros_like(g)) for g in seen["grad_c"])

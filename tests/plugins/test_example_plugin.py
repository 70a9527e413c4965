"""The example plugin's components compute what their papers say (known answers)."""

from __future__ import annotations

import pytest
import torch

from mtlrun.balancers import StepContext
from tests.plugins.helpers import PACKAGE


@pytest.fixture
def example(installed):
    import importlib

    return {
        name: importlib.import_module(f"{PACKAGE}.{name}") for name in ("balancers", "archs", "encoders", "metrics")
    }


def _ctx(present=None):
    return StepContext(model=torch.nn.Module(), shared_params=[], task_params={}, epoch=1, step=0, present=present)


def test_lbtw_weights_are_the_loss_ratios_to_the_first_step_to_the_power_alpha(example):
    lbtw = example["balancers"].LossBalancedTaskWeighting(["a", "b"], alpha=0.5)
    assert torch.allclose(lbtw.weights(torch.tensor([2.0, 4.0]), _ctx()), torch.ones(2))
    assert torch.allclose(lbtw.weights(torch.tensor([1.0, 1.0]), _ctx()), torch.tensor([0.5**0.5, 0.25**0.5]))
    assert torch.equal(lbtw.state_dict()["initial"], torch.tensor([2.0, 4.0]))  # checkpointed


def test_lbtw_takes_the_first_loss_of_a_task_when_it_first_has_labels(example):
    lbtw = example["balancers"].LossBalancedTaskWeighting(["a", "b"], alpha=1.0)
    lbtw.weights(torch.tensor([2.0, 0.0]), _ctx(torch.tensor([True, False])))
    assert torch.isnan(lbtw.initial[1])
    weights = lbtw.weights(torch.tensor([1.0, 3.0]), _ctx())
    assert torch.allclose(weights, torch.tensor([0.5, 1.0]))


def test_and_mask_keeps_the_coordinates_where_every_task_agrees_in_sign(example):
    jacobian = torch.tensor([[1.0, -1.0, 2.0], [3.0, 1.0, 4.0]])
    mask = example["balancers"].AndMask(["a", "b"])
    assert torch.allclose(mask.direction(jacobian, _ctx()), torch.tensor([2.0, 0.0, 3.0]))
    scaled = example["balancers"].AndMask(["a", "b"], scale_inverse_sparsity=True)
    assert torch.allclose(scaled.direction(jacobian, _ctx()), torch.tensor([3.0, 0.0, 4.5]))
    lenient = example["balancers"].AndMask(["a", "b"], agreement=0.0)
    assert torch.allclose(lenient.direction(jacobian, _ctx()), jacobian.mean(dim=0))


def test_and_mask_fills_the_shared_gradients_through_the_template(example):
    theta = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    losses = {"a": (theta * torch.tensor([1.0, -1.0])).sum(), "b": (theta * torch.tensor([3.0, 1.0])).sum()}
    ctx = StepContext(model=torch.nn.Module(), shared_params=[theta], task_params={}, epoch=1, step=0)
    info = example["balancers"].AndMask(["a", "b"]).backward(losses, ctx)
    assert torch.allclose(theta.grad, torch.tensor([2.0, 0.0])) and info.jacobian is not None


def test_the_brier_score_is_the_mean_squared_error_of_the_probabilities(example):
    brier = example["metrics"].BrierScore()
    brier.update(torch.tensor([0.9, 0.2]), torch.tensor([1, 0]))
    brier.update(torch.tensor([0.5]), torch.tensor([1]))
    assert brier.compute().item() == pytest.approx((0.01 + 0.04 + 0.25) / 3)
    assert example["metrics"].BrierScore.higher_is_better is False


def test_task_gates_keep_the_model_contract(example):
    from mtlrun.data.tasks import binary_task, regression_task
    from mtlrun.models import ARCHS, EncoderSpec

    spec = EncoderSpec(name=f"{PACKAGE}.encoders.ResidualMLP", input_shape=(6,), options={"width": 8, "blocks": 1})
    tasks = [binary_task("a"), regression_task("b")]
    model = ARCHS.build(f"{PACKAGE}.archs.TaskGates", {"reduction": 2}, encoder=spec, tasks=tasks)
    out = model(torch.randn(5, 6))
    assert {t: o.shape for t, o in out.items()} == {"a": (5, 1), "b": (5, 1)}
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in model.task_parameters("a")} == {
        id(p) for m in (model.gates["a"], model.heads["a"]) for p in m.parameters()
    }
    assert [s for s in model.encoder.stage_shapes] == [(8,), (8,)]
    rep = model.encode(torch.randn(3, 6))
    assert rep.shape == (3, 8) and set(model.decode(rep)) == {"a", "b"}

"""The balancer contract itself: declared hooks, their checks, and the runnable examples in base.py."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import Tensor

import mtlrun.balancers.base as base
from mtlrun.balancers.base import GradientAggregator, StepContext
from mtlrun.errors import ConfigError


def test_the_examples_in_the_contract_run():
    result = doctest.testmod(base, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 8 and result.failed == 0


def test_a_hook_without_a_declared_output_is_refused_when_the_class_is_created():
    with pytest.raises(TypeError, match="declares no output"):

        class Undeclared(GradientAggregator):
            def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
                return torch.ones(jacobian.shape[0])


@pytest.mark.parametrize("declared", ["weights", "direction"])
def test_the_declared_hook_and_only_it_must_be_overridden(declared):
    other = "direction" if declared == "weights" else "weights"

    def hook(self, jacobian, ctx):
        return jacobian.sum(0)

    with pytest.raises(TypeError, match=f"override exactly the {declared}"):
        type("WrongHook", (GradientAggregator,), {"output": declared, other: hook})
    with pytest.raises(TypeError, match=f"override exactly the {declared}"):
        type("BothHooks", (GradientAggregator,), {"output": declared, "weights": hook, "direction": hook})
    with pytest.raises(TypeError, match="'weights' or 'direction'"):
        type("Sideways", (GradientAggregator,), {"output": "sideways", declared: hook})


def test_an_intermediate_base_cannot_be_used_as_a_balancer():
    class Intermediate(GradientAggregator):
        """Shared helpers only; no output yet."""

    with pytest.raises(TypeError, match="declares no output"):
        Intermediate(["a", "b"])


def test_update_every_is_refused_for_a_direction_with_one_line():
    class Mean(GradientAggregator):
        output = "direction"

        def direction(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
            return jacobian.mean(0)

    with pytest.raises(ConfigError) as error:
        Mean(["a", "b"], update_every=2)
    assert "balancer.update_every=2 needs a method that returns task weights" in str(error.value)
    assert "\n" not in str(error.value)


def test_hooks_see_the_losses_and_the_present_rows_only():
    seen = {}

    class Recorder(GradientAggregator):
        output = "weights"

        def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
            seen["rows"], seen["losses"] = jacobian.shape[0], ctx.losses
            return torch.ones(jacobian.shape[0], dtype=jacobian.dtype)

    theta = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    losses = {"a": (theta**2).sum(), "b": (3 * theta).sum() * 0.0, "c": theta.sum()}
    ctx = StepContext(
        model=torch.nn.Module(),
        shared_params=[theta],
        task_params={},
        epoch=1,
        step=0,
        present=torch.tensor([True, False, True]),
    )
    info = Recorder(["a", "b", "c"]).backward(losses, ctx)
    assert seen["rows"] == 2
    assert torch.equal(seen["losses"], torch.tensor([5.0, 0.0, 3.0]))
    assert torch.equal(info.weights, torch.tensor([1.0, 0.0, 1.0]))
    assert torch.equal(theta.grad, torch.tensor([3.0, 5.0]))  # 2 theta + 1
    assert ctx.losses is None  # the trainer's context is not modified

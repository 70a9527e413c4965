"""``mtlrun.testing.check_balancer`` fails on a balancer broken for each property (none of the checks
is vacuous), names the method and the property, and runs without a test framework."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest
import torch
from torch import Tensor

import mtlrun.testing
from mtlrun.balancers import BalanceInfo, Balancer, GradientAggregator, LossWeighting, StepContext
from mtlrun.balancers.jacobian import accumulate_grad, task_jacobian
from mtlrun.testing import PROPERTIES, check_balancer


class PositionalWeights(LossWeighting):
    """Weights by position in the task list, not by task: permuting the tasks changes the update."""

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        return torch.arange(1, len(losses) + 1, dtype=losses.dtype)


class OffsetDirection(GradientAggregator):
    """The mean gradient plus a fixed vector: not a multiple of a common gradient."""

    output = "direction"

    def direction(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        return jacobian.mean(0) + 0.1


class SharedOnly(Balancer):
    """Fills the shared parameters' gradients and forgets the heads."""

    def returns_jacobian(self, step: int) -> bool:
        return True

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        jac = task_jacobian(self.task_losses(losses), ctx.shared_params)
        accumulate_grad(ctx.shared_params, jac.sum(0))
        return BalanceInfo(jacobian=jac)


class ForgetfulCounter(LossWeighting):
    """Weights that grow with a step count kept in a plain attribute, which state_dict() loses."""

    def __init__(self, tasks) -> None:
        super().__init__(tasks)
        self.count = 0

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        self.count += 1
        return torch.full_like(losses, float(self.count))


class Secretive(GradientAggregator):
    """Says it returns no Jacobian, and returns one."""

    output = "weights"

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        return torch.ones(jacobian.shape[0], dtype=jacobian.dtype)

    def returns_jacobian(self, step: int) -> bool:
        return False


class InverseLoss(LossWeighting):
    """Weights 1/L_t: a task without labels (loss 0) gets an infinite weight."""

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        return 1.0 / losses.detach()


class LeakyAverage(LossWeighting):
    """An average of each task's loss that also moves for a task without labels."""

    def __init__(self, tasks) -> None:
        super().__init__(tasks)
        self.register_buffer("average", torch.ones(self.num_tasks))

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        self.average.mul_(0.9).add_(0.1 * losses.detach().to(self.average))
        return (1.0 / self.average).to(losses)


class ReadsTheLearningRate(LossWeighting):
    """Reads ctx.lr without declaring it in context_needs(): a plain loop does not pass it."""

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        return torch.full_like(losses, 1.0 + ctx.lr)


BROKEN = {
    "permutation": (PositionalWeights, {}),
    "equal_gradients": (OffsetDirection, {}),
    "finite_gradients": (SharedOnly, {}),
    "state_round_trip": (ForgetfulCounter, {}),
    "honest_jacobian": (Secretive, {}),
    "absent_task": (InverseLoss, {}),
    "absent_task_state": (LeakyAverage, {"task_state": ["average"]}),
    "plain_loop": (ReadsTheLearningRate, {}),
}


def test_every_property_has_a_broken_balancer_here():
    assert set(BROKEN) == set(PROPERTIES)


@pytest.mark.parametrize("prop", list(PROPERTIES))
def test_a_balancer_broken_for_a_property_fails_it_by_name(prop):
    cls, arguments = BROKEN[prop]
    with pytest.raises(AssertionError) as error:
        check_balancer(cls, **arguments)
    first_line = str(error.value).splitlines()[0]
    assert first_line.startswith(f"{cls.__name__} breaks '{prop}' ({PROPERTIES[prop]}): "), first_line


@pytest.mark.parametrize("prop", list(PROPERTIES))
def test_each_broken_balancer_fails_its_property_alone(prop):
    cls, arguments = BROKEN[prop]
    with pytest.raises(AssertionError, match=f"breaks '{prop}'"):
        check_balancer(cls, **arguments, properties=[prop])


def test_the_report_lists_what_was_checked_and_what_was_skipped_with_why():
    from mtlrun.balancers import PCGrad

    report = check_balancer(PCGrad, order_dependent="projects in a random order")
    assert report.skipped["permutation"] == "projects in a random order"
    assert "absent_task_state" in report.skipped
    assert report.checked == [p for p in PROPERTIES if p not in report.skipped]
    assert str(report).startswith("PCGrad: 6 properties hold (")


def test_bad_arguments_are_refused():
    from mtlrun.balancers import EqualWeighting

    with pytest.raises(ValueError, match="unknown balancer property 'speed'"):
        check_balancer(EqualWeighting, properties=["speed"])
    with pytest.raises(ValueError, match="skip names an unknown property 'speed'"):
        check_balancer(EqualWeighting, skip={"speed": "why"})
    with pytest.raises(AssertionError, match="task_state names nothing_here"):
        check_balancer(EqualWeighting, task_state=["nothing_here"], properties=["absent_task_state"])


def test_the_callers_random_state_is_left_as_it_was():
    from mtlrun.balancers import RandomLossWeighting

    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    check_balancer(RandomLossWeighting, order_dependent="draws by position", properties=["plain_loop"])
    assert torch.equal(torch.random.get_rng_state(), before)


def test_it_runs_without_pytest_and_its_example_runs():
    script = (
        "import sys\n"
        "from mtlrun.testing import check_balancer\n"
        "from mtlrun.balancers import MGDA\n"
        "print(check_balancer(MGDA))\n"
        "assert 'pytest' not in sys.modules, 'pytest was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MGDA: 7 properties hold")
    result = doctest.testmod(mtlrun.testing)
    assert result.attempted >= 2 and result.failed == 0

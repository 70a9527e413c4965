"""Properties every registered balancer must have, checked on one tiny model (torchjd's style).

Each test is parametrised over ``BALANCERS.names()``, so a new method is checked without being named
here. A method is excluded from a property only where its definition breaks it; the reason is given.
"""

from __future__ import annotations

import copy
import importlib.util
import io

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

from mtlrun.balancers import BALANCERS, Balancer, GradientAggregator, StepContext
from mtlrun.balancers.base import Batch

TASKS = ["a", "b", "c"]
NAMES = BALANCERS.names()

#: options that keep every method quick on the toy (fewer inner iterations; stch past its warm-up)
OPTIONS: dict[str, dict] = {
    "forum": {"inner_steps": 1},
    "sdmgrad": {"niter": 3},
    "stch": {"warmup_epochs": 0},
}

#: methods whose decision depends on the order of the tasks by definition
ORDER_DEPENDENT = {
    "pcgrad": "projects onto the other tasks in a random order",
    "gradvac": "visits the other tasks in a random order",
    "rlw": "draws its weights position by position",
}

#: methods whose update is not a combination of the step's own task gradients
NOT_A_COMBINATION = {
    "forum": "steps along the upper-level gradients of another batch",
}


class TinyModel(nn.Module):
    """A shared tanh layer and one linear head per task, in float64."""

    def __init__(self, tasks: list[str], seed: int = 0, same_heads: bool = False) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.shared = nn.Linear(3, 4)
        self.heads = nn.ModuleDict({t: nn.Linear(4, 1) for t in tasks})
        if same_heads:
            first = self.heads[tasks[0]].state_dict()
            for t in tasks[1:]:
                self.heads[t].load_state_dict(first)
        self.double()

    def encode(self, x: Tensor) -> Tensor:
        return torch.tanh(self.shared(x))

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        return {t: head(z).squeeze(-1) for t, head in self.heads.items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.decode(self.encode(x))


def make_batch(seed: int, tasks: list[str], same_targets: bool = False) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    common = torch.randn(8, generator=g, dtype=torch.float64)
    return x, {t: common if same_targets else torch.randn(8, generator=g, dtype=torch.float64) for t in tasks}


class Setup:
    """The model, its batches and the step context a trainer would build, for one balancer."""

    def __init__(
        self, balancer: Balancer, model: TinyModel, *, same_targets: bool = False, absent: str | None = None
    ) -> None:
        self.balancer, self.model, self.absent = balancer, model, absent
        tasks = list(model.heads)
        self.batches = [make_batch(seed, tasks, same_targets) for seed in range(1, 5)]

    def losses_on(self, outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
        losses = {t: ((outputs[t] - targets[t]) ** 2).mean() for t in outputs}
        if self.absent is not None:  # no labels for this task: an exact zero that keeps its graph
            losses[self.absent] = losses[self.absent] * 0.0
        return losses

    def forward(self, step: int = 0, epoch: int = 1) -> tuple[dict[str, Tensor], StepContext]:
        model, balancer = self.model, self.balancer
        model.zero_grad(set_to_none=True)
        batch = self.batches[0]
        present = None
        if self.absent is not None:
            present = torch.tensor([t != self.absent for t in balancer.tasks])
        ctx = StepContext(
            model=model,
            shared_params=list(model.shared.parameters()),
            task_params={t: list(h.parameters()) for t, h in model.heads.items()},
            epoch=epoch,
            step=step,
            extra_batches=self.batches[1 : balancer.batches_per_step],
            compute_losses=lambda b: self.losses_on(model(b[0]), b[1]),
            lr=0.1,
            batch=batch,
            validation_batch=lambda: self.batches[-1],
            functional_losses=lambda params, b: self.losses_on(functional_call(model, params, (b[0],)), b[1]),
            present=present,
        )
        if balancer.needs_representation:
            z = model.encode(batch[0])
            z_in = z.detach().requires_grad_(True)
            outputs = model.decode(z_in)
            ctx.representation, ctx.representation_input = z, z_in
        else:
            outputs = model(batch[0])
        return self.losses_on(outputs, batch[1]), ctx

    def step(self, step: int = 0, epoch: int = 1):
        losses, ctx = self.forward(step, epoch)
        torch.manual_seed(100 + step)
        return balancer_step(self.balancer, losses, ctx)

    def sgd(self, lr: float = 0.05) -> None:
        with torch.no_grad():
            for p in [*self.model.parameters(), *self.balancer.parameters()]:
                if p.grad is not None:
                    p -= lr * p.grad

    def shared_grad(self) -> Tensor:
        return torch.cat([p.grad.reshape(-1) for p in self.model.shared.parameters()])


def balancer_step(balancer: Balancer, losses: dict[str, Tensor], ctx: StepContext):
    return balancer.backward(losses, ctx)


def build(name: str, tasks: list[str] = TASKS, **extra) -> Balancer:
    if name == "torchjd" and importlib.util.find_spec("torchjd") is None:
        pytest.skip("torchjd is not installed (pip install 'mtlrun[torchjd]')")
    balancer = BALANCERS.build(name, {**OPTIONS.get(name, {}), **extra}, tasks=tasks)
    balancer.double()
    return balancer


def independent_jacobian(setup: Setup) -> Tensor:
    """J (T, P) of the step's losses on the shared parameters, by one autograd call per task."""
    x, targets = setup.batches[0]
    losses = setup.losses_on(setup.model(x), targets)  # a plain forward, also for a split one
    shared = list(setup.model.shared.parameters())
    rows = []
    for t in setup.balancer.tasks:
        grads = torch.autograd.grad(losses[t], shared, retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    setup.model.zero_grad(set_to_none=True)
    return torch.stack(rows)


@pytest.mark.parametrize("name", NAMES)
def test_permuting_the_tasks_permutes_the_weights_and_keeps_the_update(name):
    if name in ORDER_DEPENDENT:
        pytest.skip(ORDER_DEPENDENT[name])
    order = ["c", "a", "b"]
    first = Setup(build(name), TinyModel(TASKS))
    info = first.step()
    permuted = Setup(build(name, order), TinyModel(TASKS))
    info_permuted = permuted.step()
    torch.testing.assert_close(permuted.shared_grad(), first.shared_grad(), rtol=1e-6, atol=1e-9)
    if info.weights is not None:
        index = [order.index(t) for t in TASKS]
        torch.testing.assert_close(info_permuted.weights[index], info.weights, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_equal_task_gradients_give_a_multiple_of_the_common_gradient(name):
    if name in NOT_A_COMBINATION:
        pytest.skip(NOT_A_COMBINATION[name])
    setup = Setup(build(name), TinyModel(TASKS, same_heads=True), same_targets=True)
    common = independent_jacobian(setup)[0]
    setup.step()
    grad = setup.shared_grad()
    residual = grad - (grad @ common) / (common @ common) * common
    assert float(residual.norm()) <= 1e-6 * max(float(grad.norm()), float(common.norm()))


@pytest.mark.parametrize("name", NAMES)
def test_every_trainable_parameter_gets_a_finite_gradient(name):
    setup = Setup(build(name), TinyModel(TASKS))
    setup.step()
    for module in (setup.model, setup.balancer):
        for pname, p in module.named_parameters():
            assert p.grad is not None, f"{pname} got no gradient"
            assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", NAMES)
def test_a_state_dict_round_trip_gives_the_same_next_step(name):
    trained = Setup(build(name), TinyModel(TASKS))
    for step in range(2):
        trained.step(step, epoch=step + 1)
        trained.sgd()
    buffer = io.BytesIO()
    torch.save(trained.balancer.state_dict(), buffer)
    buffer.seek(0)
    fresh_balancer = build(name)
    fresh_balancer.load_state_dict(torch.load(buffer, weights_only=True))
    fresh = Setup(fresh_balancer, copy.deepcopy(trained.model))
    expected = trained.step(2, epoch=3)
    got = fresh.step(2, epoch=3)
    torch.testing.assert_close(fresh.shared_grad(), trained.shared_grad(), rtol=1e-9, atol=1e-12)
    if expected.weights is not None:
        torch.testing.assert_close(got.weights, expected.weights, rtol=1e-9, atol=1e-12)


def honest_jacobian(setup: Setup, step: int) -> None:
    expected = independent_jacobian(setup)
    promised = setup.balancer.returns_jacobian(step)
    info = setup.step(step)
    if promised:
        assert info.jacobian is not None
        torch.testing.assert_close(info.jacobian, expected, rtol=1e-7, atol=1e-10)
    else:
        assert info.jacobian is None


@pytest.mark.parametrize("name", NAMES)
def test_returns_jacobian_is_honest(name):
    honest_jacobian(Setup(build(name), TinyModel(TASKS)), step=0)


@pytest.mark.parametrize(
    ("name", "options"),
    [("mgda", {"update_every": 2}), ("excess_mtl", {"update_every": 2}), ("nash_mtl", {"rep_grad": True})],
)
def test_returns_jacobian_is_honest_on_cached_and_representation_steps(name, options):
    setup = Setup(build(name, **options), TinyModel(TASKS))
    for step in range(3):  # recompute, reuse, recompute
        honest_jacobian(setup, step)
        setup.sgd()
    if "update_every" in options:
        assert not setup.balancer.returns_jacobian(1) and setup.balancer.returns_jacobian(2)


@pytest.mark.parametrize("name", NAMES)
def test_an_absent_task_gets_no_gradient_and_the_output_stays_finite(name):
    setup = Setup(build(name), TinyModel(TASKS), absent="b")
    for step in range(3):
        info = setup.step(step, epoch=step + 1)
        head = setup.model.heads["b"]
        for p in head.parameters():
            assert p.grad is None or torch.equal(p.grad, torch.zeros_like(p.grad))
        for pname, p in [*setup.model.named_parameters(), *setup.balancer.named_parameters()]:
            assert p.grad is None or torch.isfinite(p.grad).all(), pname
        if info.weights is not None:
            assert torch.isfinite(info.weights).all()
            if isinstance(setup.balancer, GradientAggregator):
                assert float(info.weights[TASKS.index("b")]) == 0.0
        for bname, value in setup.balancer.state_dict().items():
            if isinstance(value, Tensor) and value.is_floating_point():
                assert torch.isfinite(value).all(), bname
        setup.sgd()


#: state (buffer or parameter names) indexed by task along its first dimension, per stateful method
TASK_STATE = {
    "auto_lambda": ["lam", "lam_exp_avg", "lam_exp_avg_sq"],
    "db_mtl": ["grad_ema"],
    "dwa": ["epoch_averages"],
    "excess_mtl": ["loss_weights", "initial_excess", "grad_sq_sum"],
    "famo": ["logits", "optimizer.exp_avg", "optimizer.exp_avg_sq", "previous_losses"],
    "forum": ["logits", "logits_exp_avg"],
    "gradnorm": ["task_weights", "initial_losses", "optimizer.exp_avg"],
    "gradvac": ["targets"],
    "imtl": ["log_scales"],
    "moco": ["tracked", "lambd"],
    "moml": ["logits", "logits_exp_avg"],
    "stch": ["nadir"],
    "uw": ["log_variances"],
}


@pytest.mark.parametrize("name", sorted(TASK_STATE))
def test_an_absent_task_keeps_its_state(name):
    setup = Setup(build(name), TinyModel(TASKS), absent="b")
    index = setup.balancer.tasks.index("b")

    def state() -> dict[str, Tensor]:
        values = {**dict(setup.balancer.named_parameters()), **setup.balancer.state_dict()}
        return {key: values[key].detach().clone() for key in TASK_STATE[name]}

    setup.step(0, epoch=1)
    setup.sgd()
    before = state()
    for step in range(1, 4):
        setup.step(step, epoch=step + 1)
        setup.sgd()
    after = state()
    assert any(not torch.equal(after[key], before[key]) for key in TASK_STATE[name])  # the others moved
    for key in TASK_STATE[name]:
        assert torch.equal(
            after[key][:, index] if key == "epoch_averages" else after[key][index],
            (before[key][:, index] if key == "epoch_averages" else before[key][index]),
        ), key
        if key == "targets":
            assert torch.equal(after[key][:, index], before[key][:, index])

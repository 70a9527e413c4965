"""The properties every balancer must have, checked on a tiny model (torchjd's test mixins, as one call).

:func:`check_balancer` runs them on any balancer class (a built-in one or your own) and raises an
``AssertionError`` naming the method and the property that fails; the test suite applies it to
every registered balancer. A method is excused from a property only where its definition breaks
it, with the reason given as an argument (``order_dependent="projects in a random order"``).

The properties (``PROPERTIES``):

- ``permutation``: listing the tasks in another order permutes the weights and keeps the update;
- ``equal_gradients``: when every task has the same gradient, the update is a multiple of it;
- ``finite_gradients``: every trainable parameter (model and balancer) gets a finite gradient;
- ``state_round_trip``: ``state_dict()`` saved with ``torch.save`` and loaded into a fresh balancer
  gives the same next step (the state a checkpoint must hold);
- ``honest_jacobian``: ``returns_jacobian(step)`` says truly whether ``BalanceInfo.jacobian`` holds
  the task Jacobian on the shared parameters, and that Jacobian is exact (diagnostics reuse it);
  three steps, so cached-weight steps (``update_every``) are covered;
- ``absent_task``: a task without labels in the batch gets no gradient on its head and, from a
  gradient aggregator, weight 0; every gradient, weight and state entry stays finite;
- ``absent_task_state``: the state entries indexed by task (``task_state``) keep an absent task's
  entry while the others move;
- ``plain_loop``: built without ``tasks`` and called as ``backward(losses, **keywords)`` with only
  what ``context_needs()`` declares, the balancer gives the trainer's update (``backward(losses, ctx)``).

Only torch is needed: no test framework is imported, so the checks run in a notebook too.
"""

from __future__ import annotations

import copy
import inspect
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import Balancer, GradientAggregator
from mtlrun.testing.toys import TASKS, Setup, TinyModel

#: property name -> what it checks (the order in which they run)
PROPERTIES: dict[str, str] = {
    "permutation": "permuting the tasks permutes the weights and keeps the update",
    "equal_gradients": "equal task gradients give a multiple of the common gradient",
    "finite_gradients": "every trainable parameter gets a finite gradient",
    "state_round_trip": "a state_dict round trip gives the same next step",
    "honest_jacobian": "returns_jacobian is honest and the returned Jacobian is exact",
    "absent_task": "an absent task gets no gradient and everything stays finite",
    "absent_task_state": "an absent task keeps its state while the others' moves",
    "plain_loop": "built without tasks and called with keywords, it gives the trainer's update",
}

Factory = Callable[..., Balancer]
#: a state entry's name -> the dimension(s) indexed by task
TaskState = Mapping[str, int | Sequence[int]]


@dataclass
class BalancerReport:
    """What :func:`check_balancer` checked: the properties that hold and those skipped, with why."""

    method: str
    checked: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        line = f"{self.method}: {len(self.checked)} properties hold ({', '.join(self.checked) or 'none'})"
        if self.skipped:
            line += "; skipped: " + "; ".join(f"{name} ({why})" for name, why in self.skipped.items())
        return line


class Checker:
    """Builds the balancer under test and runs one property at a time."""

    def __init__(
        self, factory: Factory, options: Mapping[str, Any], task_state: TaskState | Sequence[str] | None
    ) -> None:
        self.factory, self.options = factory, dict(options)
        self.task_state = _task_state(task_state)

    def build(self, tasks: Sequence[str] = TASKS) -> Balancer:
        balancer = self.factory(list(tasks), **self.options)
        if not isinstance(balancer, Balancer):
            raise TypeError(f"{_name(self.factory)} built a {type(balancer).__name__}, not an mtlrun Balancer")
        return balancer.double()

    def build_without_tasks(self) -> Balancer:
        """As a plain loop builds it: no tasks (a class); a factory function gets them."""
        if not (inspect.isclass(self.factory) and issubclass(self.factory, Balancer)):
            return self.build()
        return self.factory(**self.options).double()

    # ---- the properties ----

    def permutation(self) -> None:
        order = ["c", "a", "b"]
        first = Setup(self.build(), TinyModel(TASKS))
        info = first.step()
        permuted = Setup(self.build(order), TinyModel(TASKS))
        info_permuted = permuted.step()
        _close(permuted.shared_grad(), first.shared_grad(), "the update on the shared parameters", 1e-6, 1e-9)
        if info.weights is not None:
            assert info_permuted.weights is not None, "the permuted run reports no weights"
            index = [order.index(t) for t in TASKS]
            _close(info_permuted.weights[index], info.weights, "the weights, permuted back", 1e-6, 1e-9)

    def equal_gradients(self) -> None:
        setup = Setup(self.build(), TinyModel(TASKS, same_heads=True), same_targets=True)
        common = setup.independent_jacobian()[0]
        setup.step()
        grad = setup.shared_grad()
        residual = grad - (grad @ common) / (common @ common) * common
        bound = 1e-6 * max(float(grad.norm()), float(common.norm()))
        assert float(residual.norm()) <= bound, (
            f"the update is not along the common gradient: residual norm {float(residual.norm()):.3g} > {bound:.3g}"
        )

    def finite_gradients(self) -> None:
        setup = Setup(self.build(), TinyModel(TASKS))
        setup.step()
        for owner, module in (("model", setup.model), ("balancer", setup.balancer)):
            for name, p in module.named_parameters():
                if not p.requires_grad:
                    continue
                assert p.grad is not None, f"{owner} parameter {name} got no gradient"
                assert bool(torch.isfinite(p.grad).all()), f"{owner} parameter {name} got a non-finite gradient"

    def state_round_trip(self) -> None:
        trained = Setup(self.build(), TinyModel(TASKS))
        for step in range(2):
            trained.step(step, epoch=step + 1)
            trained.sgd()
        buffer = io.BytesIO()
        torch.save(trained.balancer.state_dict(), buffer)
        buffer.seek(0)
        fresh_balancer = self.build()
        fresh_balancer.load_state_dict(torch.load(buffer, weights_only=True))
        fresh = Setup(fresh_balancer, copy.deepcopy(trained.model))
        expected = trained.step(2, epoch=3)
        got = fresh.step(2, epoch=3)
        _close(fresh.shared_grad(), trained.shared_grad(), "the next update after loading the state", 1e-9, 1e-12)
        if expected.weights is not None:
            assert got.weights is not None, "the reloaded balancer reports no weights"
            _close(got.weights, expected.weights, "the next weights after loading the state", 1e-9, 1e-12)

    def honest_jacobian(self) -> None:
        setup = Setup(self.build(), TinyModel(TASKS))
        for step in range(3):
            expected = setup.independent_jacobian()
            promised = setup.balancer.returns_jacobian(step)
            info = setup.step(step)
            if promised:
                assert info.jacobian is not None, f"returns_jacobian({step}) is True but the step returned no Jacobian"
                _close(info.jacobian, expected, f"the Jacobian returned at step {step}", 1e-7, 1e-10)
            else:
                assert info.jacobian is None, f"returns_jacobian({step}) is False but the step returned a Jacobian"
            setup.sgd()

    def absent_task(self) -> None:
        setup = Setup(self.build(), TinyModel(TASKS), absent="b")
        for step in range(3):
            info = setup.step(step, epoch=step + 1)
            for name, p in setup.model.heads["b"].named_parameters():
                assert p.grad is None or not bool(p.grad.any()), f"the absent task's head ({name}) got a gradient"
            for name, p in [*setup.model.named_parameters(), *setup.balancer.named_parameters()]:
                assert p.grad is None or bool(torch.isfinite(p.grad).all()), f"{name} got a non-finite gradient"
            if info.weights is not None:
                assert bool(torch.isfinite(info.weights).all()), f"non-finite weights {info.weights.tolist()}"
                if isinstance(setup.balancer, GradientAggregator):
                    weight = float(info.weights[setup.balancer.tasks.index("b")])
                    assert weight == 0.0, f"a gradient aggregator gave the absent task weight {weight}, not 0"
            for name, value in setup.balancer.state_dict().items():
                if isinstance(value, Tensor) and value.is_floating_point():
                    assert bool(torch.isfinite(value).all()), f"state entry {name} is not finite"
            setup.sgd()

    def absent_task_state(self) -> None:
        assert self.task_state, "task_state names no state entry"
        setup = Setup(self.build(), TinyModel(TASKS), absent="b")
        index = setup.balancer.tasks.index("b")

        def state() -> dict[str, Tensor]:
            values = {**dict(setup.balancer.named_parameters()), **setup.balancer.state_dict()}
            missing = [key for key in self.task_state if key not in values]
            assert not missing, f"task_state names {missing[0]}, which is not in the balancer's state: {sorted(values)}"
            return {key: values[key].detach().clone() for key in self.task_state}

        setup.step(0, epoch=1)
        setup.sgd()
        before = state()
        for step in range(1, 4):
            setup.step(step, epoch=step + 1)
            setup.sgd()
        after = state()
        moved = [key for key in self.task_state if not torch.equal(after[key], before[key])]
        assert moved, f"none of {', '.join(self.task_state)} moved in three steps, so the check would prove nothing"
        for key, dims in self.task_state.items():
            for dim in dims:
                assert torch.equal(after[key].select(dim, index), before[key].select(dim, index)), (
                    f"state entry {key} changed the absent task's entry (dimension {dim})"
                )

    def plain_loop(self) -> None:
        reference = Setup(self.build(), TinyModel(TASKS))
        plain = Setup(self.build_without_tasks(), TinyModel(TASKS))
        for step in range(3):
            expected = reference.step(step, epoch=step + 1)
            got = plain.plain_step(step, epoch=step + 1)
            assert plain.balancer.tasks == TASKS, f"the tasks taken from the losses are {plain.balancer.tasks}"
            for (name, want), (_, have) in zip(
                [*reference.model.named_parameters(), *reference.balancer.named_parameters()],
                [*plain.model.named_parameters(), *plain.balancer.named_parameters()],
            ):
                if want.grad is None:
                    assert have.grad is None, f"{name} got a gradient in the plain loop only (step {step})"
                    continue
                assert have.grad is not None, f"{name} got no gradient in the plain loop (step {step})"
                _close(have.grad, want.grad, f"the gradient of {name} at step {step}", 1e-9, 1e-12)
            if expected.weights is not None:
                assert got.weights is not None, "the plain loop reports no weights"
                _close(got.weights, expected.weights, f"the weights at step {step}", 1e-9, 1e-12)
            reference.sgd()
            plain.sgd()


def check_balancer(
    balancer: Factory,
    *,
    options: Mapping[str, Any] | None = None,
    order_dependent: str | None = None,
    not_a_combination: str | None = None,
    task_state: TaskState | Sequence[str] | None = None,
    skip: Mapping[str, str] | None = None,
    properties: Iterable[str] | None = None,
) -> BalancerReport:
    """Check the balancer properties (``PROPERTIES``) on ``balancer``, a Balancer class (or a
    factory ``f(tasks, **options)``); raise ``AssertionError`` naming the method and the first
    property that fails, else return the report.

    - ``options``: keyword arguments of the constructor (keep them small: the toy has 3 tasks and
      16 shared parameters);
    - ``order_dependent`` / ``not_a_combination``: why the method's decision depends on the order of
      the tasks (skips ``permutation``), or why its update is not a combination of the step's task
      gradients (skips ``equal_gradients``);
    - ``task_state``: the state entries (buffers or parameters) indexed by task, for
      ``absent_task_state``: names (task along dimension 0) or ``{name: dimension(s)}``; without
      it that property is skipped;
    - ``skip``: ``{property: reason}`` for any other exclusion; ``properties``: run only these.

    The caller's random state is restored afterwards.
    """
    options = dict(options or {})
    chosen = list(PROPERTIES) if properties is None else list(properties)
    unknown = [p for p in chosen if p not in PROPERTIES]
    if unknown:
        raise ValueError(f"unknown balancer property '{unknown[0]}'; the properties: {', '.join(PROPERTIES)}")
    reasons = dict(skip or {})
    for key in reasons:
        if key not in PROPERTIES:
            raise ValueError(f"skip names an unknown property '{key}'; the properties: {', '.join(PROPERTIES)}")
    if order_dependent:
        reasons.setdefault("permutation", order_dependent)
    if not_a_combination:
        reasons.setdefault("equal_gradients", not_a_combination)
    if not task_state:
        reasons.setdefault("absent_task_state", "no task_state given: name the state entries indexed by task")
    checker = Checker(balancer, options, task_state)
    report = BalancerReport(_name(balancer))
    with torch.random.fork_rng(devices=[]):
        for prop in chosen:
            if prop in reasons:
                report.skipped[prop] = reasons[prop]
                continue
            _run(report.method, prop, getattr(checker, prop))
            report.checked.append(prop)
    return report


def _run(method: str, prop: str, check: Callable[[], None]) -> None:
    try:
        check()
    except AssertionError as ex:
        raise AssertionError(f"{method} breaks '{prop}' ({PROPERTIES[prop]}): {ex}") from None
    except Exception as ex:
        raise AssertionError(
            f"{method} breaks '{prop}' ({PROPERTIES[prop]}): it raised {type(ex).__name__}: {ex}"
        ) from ex


def _close(actual: Tensor, expected: Tensor, what: str, rtol: float, atol: float) -> None:
    try:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)
    except AssertionError as ex:
        raise AssertionError(f"{what} differs: {ex}") from None


def _task_state(task_state: TaskState | Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    if not task_state:
        return {}
    if isinstance(task_state, Mapping):
        return {k: (v,) if isinstance(v, int) else tuple(v) for k, v in task_state.items()}
    return {k: (0,) for k in task_state}


def _name(factory: Any) -> str:
    return getattr(factory, "__name__", type(factory).__name__)


__all__ = ["PROPERTIES", "BalancerReport", "check_balancer"]

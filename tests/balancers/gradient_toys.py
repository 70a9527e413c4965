"""Small fixtures for the gradient-aggregator tests: random Jacobians and a toy shared model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtlrun.balancers import BALANCERS, Balancer, StepContext


def tasks(n: int) -> list[str]:
    return [f"t{i}" for i in range(n)]


def build(name: str, num_tasks: int = 3, **options) -> Balancer:
    return BALANCERS.build(name, options, tasks=tasks(num_tasks))


def random_jacobian(num_tasks: int, dim: int = 11, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_tasks, dim, generator=generator, dtype=dtype)


def hook_context(jacobian: Tensor, losses: Tensor | None = None) -> StepContext:
    """The context a hook sees for J alone: every task present, unit losses unless given."""
    values = torch.ones(jacobian.shape[0], dtype=jacobian.dtype) if losses is None else losses
    return StepContext(model=nn.Module(), shared_params=[], task_params={}, epoch=1, step=0, losses=values)


def update(balancer: Balancer, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
    """The update direction (P,) a gradient aggregator derives from J (weights are applied to J)."""
    ctx = hook_context(jacobian, losses)
    if balancer.output == "weights":
        return balancer.weights(jacobian, ctx) @ jacobian
    return balancer.direction(jacobian, ctx)


def weights(balancer: Balancer, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
    assert balancer.output == "weights"
    decision = balancer.weights(jacobian, hook_context(jacobian, losses))
    assert decision.shape == (jacobian.shape[0],)
    return decision


@dataclass
class ToyStep:
    """A shared linear layer with one linear head per task and an MSE loss each, on fixed data."""

    shared: nn.Linear
    heads: nn.ModuleList
    losses: dict[str, Tensor]
    ctx: StepContext


def toy_step(num_tasks: int = 3, seed: int = 0, step: int = 0, opposite: bool = False) -> ToyStep:
    """One forward of the toy model; ``opposite`` makes task 1's loss the negative of task 0's."""
    torch.manual_seed(seed)
    shared = nn.Linear(5, 4)
    heads = nn.ModuleList(nn.Linear(4, 1) for _ in range(num_tasks))
    x, y = torch.randn(16, 5), torch.randn(16, num_tasks)
    z = torch.tanh(shared(x))
    names = tasks(num_tasks)
    losses = {t: ((heads[i](z).squeeze(1) - y[:, i]) ** 2).mean() for i, t in enumerate(names)}
    if opposite:
        losses[names[1]] = -losses[names[0]]
    ctx = StepContext(
        model=nn.ModuleList([shared, heads]),
        shared_params=list(shared.parameters()),
        task_params={t: list(heads[i].parameters()) for i, t in enumerate(names)},
        epoch=1,
        step=step,
    )
    return ToyStep(shared, heads, losses, ctx)


def shared_jacobian(toy: ToyStep) -> Tensor:
    """The task Jacobian on the shared layer, by a hand-written loop of autograd.grad calls."""
    rows = []
    for loss in toy.losses.values():
        grads = torch.autograd.grad(loss, list(toy.shared.parameters()), retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def shared_grad(toy: ToyStep) -> Tensor:
    return torch.cat([p.grad.reshape(-1) for p in toy.shared.parameters()])

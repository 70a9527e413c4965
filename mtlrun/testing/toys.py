"""The tiny model, batches and step contexts the balancer properties are checked on.

A shared tanh layer and one linear head per task, in float64 so that properties hold to tight
tolerances; four fixed batches (the step's own, extra ones for multi-batch methods, the last one as
the validation batch). :class:`Setup` takes a balancer through steps as the trainer does
(``backward(losses, ctx)``) or as a plain loop does (``backward(losses, **keywords)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from mtlrun.balancers.base import BalanceInfo, Balancer, Batch, StepContext

TASKS = ["a", "b", "c"]


class TinyModel(nn.Module):
    """A shared tanh layer and one linear head per task, in float64."""

    def __init__(self, tasks: list[str], seed: int = 0, same_heads: bool = False) -> None:
        super().__init__()
        torch.manual_seed(seed)  # check_balancer restores the caller's RNG state afterwards
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

    def closures(self) -> dict[str, Any]:
        """Everything a method may ask for beyond the losses, as the trainer provides it."""
        model = self.model
        return {
            "model": model,
            "lr": 0.1,
            "batch": self.batches[0],
            "extra_batches": self.batches[1 : self.balancer.batches_per_step],
            "compute_losses": lambda b: self.losses_on(model(b[0]), b[1]),
            "validation_batch": lambda: self.batches[-1],
            "functional_losses": lambda params, b: self.losses_on(functional_call(model, params, (b[0],)), b[1]),
        }

    def forward(self, step: int = 0, epoch: int = 1) -> tuple[dict[str, Tensor], StepContext]:
        model, balancer = self.model, self.balancer
        model.zero_grad(set_to_none=True)
        batch = self.batches[0]
        present = None
        if self.absent is not None:
            present = torch.tensor([t != self.absent for t in balancer.tasks])
        ctx = StepContext(
            shared_params=list(model.shared.parameters()),
            task_params={t: list(h.parameters()) for t, h in model.heads.items()},
            epoch=epoch,
            step=step,
            present=present,
            **self.closures(),
        )
        if balancer.needs_representation:
            z = model.encode(batch[0])
            z_in = z.detach().requires_grad_(True)
            outputs = model.decode(z_in)
            ctx.representation, ctx.representation_input = z, z_in
        else:
            outputs = model(batch[0])
        return self.losses_on(outputs, batch[1]), ctx

    def step(self, step: int = 0, epoch: int = 1) -> BalanceInfo:
        """One step as the trainer takes it (the global RNG seeded per step, for random methods)."""
        losses, ctx = self.forward(step, epoch)
        torch.manual_seed(100 + step)
        return self.balancer.backward(losses, ctx)

    def plain_step(self, step: int = 0, epoch: int = 1) -> BalanceInfo:
        """The same step as a plain loop takes it: keywords only, and only those the method declares
        (``context_needs``, ``representation`` with ``rep_grad``, ``extra_batches`` for multi-batch
        methods); the step is counted by the balancer and the task parameters are found from the graph."""
        model, balancer = self.model, self.balancer
        model.zero_grad(set_to_none=True)
        x, targets = self.batches[0]
        keywords: dict[str, Any] = {"shared_params": model.shared.parameters()}
        if self.absent is not None:
            keywords["present"] = {self.absent: False}
        if balancer.needs_representation:
            z = model.encode(x)
            outputs = model.decode(z)
            keywords["representation"] = z
        else:
            outputs = model(x)
        losses = self.losses_on(outputs, targets)
        available = {**self.closures(), "epoch": epoch}
        keywords.update({k: available[k] for k in balancer.context_needs() if k in available})
        if balancer.batches_per_step > 1:
            keywords["extra_batches"] = available["extra_batches"]
        torch.manual_seed(100 + step)
        return balancer.backward(losses, **keywords)

    def sgd(self, lr: float = 0.05) -> None:
        with torch.no_grad():
            for p in [*self.model.parameters(), *self.balancer.parameters()]:
                if p.grad is not None:
                    p.sub_(lr * p.grad)

    def shared_grad(self) -> Tensor:
        grads = [p.grad for p in self.model.shared.parameters()]
        assert all(g is not None for g in grads), "a shared parameter got no gradient"
        return torch.cat([g.reshape(-1) for g in grads if g is not None])

    def independent_jacobian(self) -> Tensor:
        """J (T, P) of the step's losses on the shared parameters, by one autograd call per task."""
        x, targets = self.batches[0]
        losses = self.losses_on(self.model(x), targets)  # a plain forward, also for a split one
        shared = list(self.model.shared.parameters())
        rows = []
        for t in self.balancer.tasks:
            grads = torch.autograd.grad(losses[t], shared, retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
        self.model.zero_grad(set_to_none=True)
        return torch.stack(rows)

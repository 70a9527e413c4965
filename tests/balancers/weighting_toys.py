"""A tiny two-layer multi-task model and one fixed batch, for testing balancers without the CLI."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlrun.balancers.base import BalanceInfo, Balancer, StepContext
from mtlrun.models.encoders import StagedEncoder


class ToyModel(nn.Module):
    """Shared encoder (two stages) and one linear head per task."""

    def __init__(self, tasks: Sequence[str], seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        stages = [nn.Sequential(nn.Linear(4, 6), nn.Tanh()), nn.Sequential(nn.Linear(6, 3), nn.Tanh())]
        self.encoder = StagedEncoder(stages, [(6,), (3,)])
        self.heads = nn.ModuleDict({t: nn.Linear(3, 1) for t in tasks})

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        return {t: head(z).squeeze(-1) for t, head in self.heads.items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.decode(self.encode(x))


class Toy:
    """A model and a fixed batch whose task targets have very different scales."""

    def __init__(self, tasks: Sequence[str] = ("a", "b", "c"), seed: int = 0) -> None:
        self.tasks = list(tasks)
        self.model = ToyModel(self.tasks, seed)
        gen = torch.Generator().manual_seed(seed + 1)
        self.x = torch.randn(16, 4, generator=gen)
        self.targets = {t: (3.0**i) * torch.randn(16, generator=gen) for i, t in enumerate(self.tasks)}
        self.shared = list(self.model.encoder.parameters())
        self.task_params = {t: list(self.model.heads[t].parameters()) for t in self.tasks}

    def losses_on(self, batch: tuple[Tensor, dict[str, Tensor]]) -> dict[str, Tensor]:
        x, targets = batch
        out = self.model(x)
        return {t: ((out[t] - targets[t]) ** 2).mean() for t in self.tasks}

    def forward(self, epoch: int = 1, step: int = 0, rep: bool = False) -> tuple[dict[str, Tensor], StepContext]:
        """The task losses and the step context, as the trainer builds them."""
        self.model.zero_grad(set_to_none=True)
        batch = (self.x, self.targets)
        ctx = StepContext(
            model=self.model,
            shared_params=self.shared,
            task_params=self.task_params,
            epoch=epoch,
            step=step,
            compute_losses=self.losses_on,
            batch=batch,
        )
        if rep:
            z = self.model.encode(self.x)
            z_in = z.detach().requires_grad_(True)
            out = self.model.decode(z_in)
            ctx.representation, ctx.representation_input = z, z_in
            losses = {t: ((out[t] - self.targets[t]) ** 2).mean() for t in self.tasks}
        else:
            losses = self.losses_on(batch)
        return losses, ctx

    def step(self, balancer: Balancer, epoch: int = 1, step: int = 0, lr: float = 0.01) -> BalanceInfo:
        """One training step: forward, ``balancer.backward``, plain SGD on the model."""
        losses, ctx = self.forward(epoch, step, rep=balancer.needs_representation)
        info = balancer.backward(losses, ctx)
        with torch.no_grad():
            for p in self.model.parameters():
                if p.grad is not None:
                    p -= lr * p.grad
        return info

    def grads(self) -> dict[str, Tensor]:
        return {n: p.grad.clone() for n, p in self.model.named_parameters() if p.grad is not None}


def scalar_losses(values: Sequence[float], requires_grad: bool = True) -> dict[str, Tensor]:
    """Losses with given values, named t0, t1, ..., each a leaf (for weight-only tests)."""
    return {f"t{i}": torch.tensor(float(v), requires_grad=requires_grad) for i, v in enumerate(values)}


def bare_context(epoch: int = 1, step: int = 0) -> StepContext:
    """A context for balancers that only look at the losses."""
    return StepContext(model=nn.Module(), shared_params=[], task_params={}, epoch=epoch, step=step)

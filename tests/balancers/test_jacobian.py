"""task_jacobian: the same J from a list of losses and from their stack, loop and batched, and a
backward pass from one task's loss that never runs another task's head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlrun.balancers.jacobian import task_jacobian


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Sequential(nn.Linear(3, 5), nn.Tanh())
        self.heads = nn.ModuleList([nn.Linear(5, 1), nn.Linear(5, 2)])
        self.backward_calls = [0, 0]  # gradients that reached each head's output

    def head(self, i: int, z: torch.Tensor) -> torch.Tensor:
        out = self.heads[i](z)
        out.register_hook(lambda grad: self.backward_calls.__setitem__(i, self.backward_calls[i] + 1))
        return out

    def losses(self, x: torch.Tensor) -> list[torch.Tensor]:
        z = self.shared(x)
        return [self.head(0, z).pow(2).mean(), self.head(1, z).sin().sum()]


def reference(model: TwoHeads, x: torch.Tensor) -> torch.Tensor:
    rows = []
    for loss in model.losses(x):
        grads = torch.autograd.grad(loss, list(model.shared.parameters()), retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


@pytest.mark.parametrize("mode", ["loop", "batched"])
@pytest.mark.parametrize("stacked", [False, True])
def test_list_and_stack_give_the_reference_jacobian_and_head_gradients(mode: str, stacked: bool) -> None:
    model, x = TwoHeads(), torch.randn(4, 3)
    expected = reference(model, x)
    losses = model.losses(x)
    heads = [list(h.parameters()) for h in model.heads]
    jac = task_jacobian(torch.stack(losses) if stacked else losses, list(model.shared.parameters()), heads, mode=mode)
    assert torch.allclose(jac, expected, atol=1e-6)
    for head, loss_index in zip(model.heads, range(2)):
        own = torch.autograd.grad(model.losses(x)[loss_index], list(head.parameters()))
        for p, g in zip(head.parameters(), own):
            assert torch.allclose(p.grad, g, atol=1e-6)


def test_a_list_of_losses_never_runs_the_other_tasks_heads_backward() -> None:
    model, x = TwoHeads(), torch.randn(4, 3)
    task_jacobian(model.losses(x), list(model.shared.parameters()), mode="loop")
    assert model.backward_calls == [1, 1]
    # from a stack, each row's backward also runs every other head's (with a zero cotangent)
    model.backward_calls = [0, 0]
    task_jacobian(torch.stack(model.losses(x)), list(model.shared.parameters()), mode="loop")
    assert model.backward_calls == [2, 2]

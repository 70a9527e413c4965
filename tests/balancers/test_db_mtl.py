"""DB-MTL: log losses, an EMA of their gradients, every task's EMA rescaled to the largest norm."""

from __future__ import annotations

import torch

from mtlrun.balancers.db_mtl import DualBalancing
from mtlrun.balancers.jacobian import flat
from tests.balancers.weighting_toys import Toy


def log_loss_jacobian(toy: Toy) -> tuple[torch.Tensor, dict[str, dict[str, torch.Tensor]]]:
    """Rows grad log L_t on the shared parameters, and each task's head gradients of log L_t."""
    rows, heads = [], {}
    for task in toy.tasks:
        losses, _ = toy.forward()
        torch.log(losses[task] + 1e-8).backward()
        rows.append(flat([p.grad for p in toy.shared], toy.shared))
        heads[task] = {n: p.grad.clone() for n, p in toy.model.heads[task].named_parameters()}
    return torch.stack(rows), heads


def test_balanced_task_gradients_have_the_largest_norm():
    toy = Toy()
    db = DualBalancing(toy.tasks, beta=0.9, beta_sigma=0.5)
    ema = torch.zeros(0)
    for k in range(1, 4):
        jac, heads = log_loss_jacobian(toy)
        ema = jac * (1 - 0.9) if k == 1 else jac + 0.9 / k**0.5 * (ema - jac)
        info = toy.step(db, step=k - 1, lr=0.0 if k == 3 else 0.05)
    # the contributions alpha_t * g_t all have the norm of the largest EMA gradient
    contributions = info.weights.unsqueeze(1) * ema
    norms = contributions.norm(dim=1)
    assert torch.allclose(norms, ema.norm(dim=1).max().expand(3), rtol=1e-4)
    assert torch.allclose(db.grad_ema, ema, rtol=1e-4, atol=1e-7)
    shared_grad = flat([p.grad for p in toy.shared], toy.shared)
    assert torch.allclose(shared_grad, contributions.sum(0), rtol=1e-4, atol=1e-6)
    for task in toy.tasks:  # heads: plain gradient of their own log loss
        for name, p in toy.model.heads[task].named_parameters():
            assert torch.allclose(p.grad, heads[task][name], atol=1e-6)


def test_reported_jacobian_is_that_of_the_raw_losses():
    toy = Toy()
    db = DualBalancing(toy.tasks)
    losses, ctx = toy.forward()
    info = db.backward(losses, ctx)
    rows = []
    for task in toy.tasks:
        again, _ = toy.forward()
        again[task].backward()
        rows.append(flat([p.grad for p in toy.shared], toy.shared))
    assert torch.allclose(info.jacobian, torch.stack(rows), rtol=1e-4, atol=1e-6)

"""Adam on a balancer's own weights (FAMO's logits, GradNorm's weights, the bilevel methods' weights).

Those weights are not ``nn.Parameter`` s on purpose: the trainer would optimise them with the model.
Their Adam moments and step count live in buffers, so ``state_dict()`` resumes the optimiser exactly.
The update rule itself is the shared one of :mod:`mtlrun.balancers.optim_rules`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlrun.balancers.optim_rules import AdamState, adam


@torch.no_grad()
def adam_on_buffers(
    value: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    steps: Tensor,
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    rows: Tensor | None = None,
) -> None:
    """One Adam step on ``value`` in place, its moments and step count (buffers) updated in place.

    ``rows`` (indices) restricts the step to those entries (the present tasks): the others, and their
    moments, stay exactly as they were; the step count still advances.
    """
    grad = grad.to(value)
    if rows is None:
        state = AdamState(steps, exp_avg, exp_avg_sq)
        updated, new = adam(value, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        value.copy_(updated)
        exp_avg.copy_(new.exp_avg)
        exp_avg_sq.copy_(new.exp_avg_sq)
    else:
        state = AdamState(steps, exp_avg[rows], exp_avg_sq[rows])
        updated, new = adam(value[rows], grad[rows], state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        value[rows] = updated
        exp_avg[rows] = new.exp_avg
        exp_avg_sq[rows] = new.exp_avg_sq
    steps.copy_(new.step)


class BufferAdam(nn.Module):
    """Adam (Kingma & Ba, ICLR 2015) with L2 weight decay for one weight vector of a balancer.

    ``step(param, grad)`` updates ``param`` in place without leaving the device.
    """

    def __init__(
        self,
        size: int,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.register_buffer("exp_avg", torch.zeros(size))
        self.register_buffer("exp_avg_sq", torch.zeros(size))
        self.register_buffer("steps", torch.zeros(()))

    def step(self, param: Tensor, grad: Tensor, rows: Tensor | None = None) -> None:
        adam_on_buffers(
            param,
            grad,
            self.exp_avg,
            self.exp_avg_sq,
            self.steps,
            lr=self.lr,
            weight_decay=self.weight_decay,
            betas=self.betas,
            eps=self.eps,
            rows=rows,
        )

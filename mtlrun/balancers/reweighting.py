"""Building blocks for balancers that adapt task weights with state of their own.

- :class:`BufferAdam`: Adam on a buffer the balancer updates itself (FAMO's logits, GradNorm's
  weights). Those are not ``nn.Parameter`` s on purpose: the trainer would optimise them with the
  model. The moments live in buffers, so ``state_dict()`` resumes the optimiser exactly.
- :func:`weighted_backward`: back-propagate ``sum_t w_t L_t``, also through a split forward
  (``ctx.representation``), where the losses reach the encoder only via the representation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlrun.balancers.base import StepContext


class BufferAdam(nn.Module):
    """Adam (Kingma & Ba, ICLR 2015) with L2 weight decay, the update of ``torch.optim.Adam``.

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

    @torch.no_grad()
    def step(self, param: Tensor, grad: Tensor) -> None:
        beta1, beta2 = self.betas
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        self.steps += 1
        self.exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias1 = 1 - beta1**self.steps
        bias2_sqrt = (1 - beta2**self.steps).sqrt()
        denom = self.exp_avg_sq.sqrt() / bias2_sqrt + self.eps
        param.sub_(self.lr * self.exp_avg / (bias1 * denom))


def weighted_backward(weights: Tensor, losses: Tensor, ctx: StepContext) -> None:
    """Back-propagate ``sum_t w_t L_t`` (``weights`` constant) into every parameter's ``.grad``."""
    (weights.detach() * losses).sum().backward()
    rep, rep_in = ctx.representation, ctx.representation_input
    if rep is not None and rep_in is not None and rep_in.grad is not None:
        rep.backward(rep_in.grad)

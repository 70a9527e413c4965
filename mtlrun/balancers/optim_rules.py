"""Pure update rules of SGD, Adam and AdamW, as ``torch.optim`` computes them.

Every function here takes a parameter, its gradient and the optimiser state, and *returns* the new
parameter and the new state; nothing is written in place. That lets one rule serve

- the balancers that keep weights of their own out of the model's optimiser (FAMO's logits,
  GradNorm's weights, the lookahead and bilevel methods' task weights), and
- lookahead computations that must see what an optimiser step *would* do without taking it
  (:func:`preview_step` reads a ``torch.optim`` optimiser's hyperparameters and state).

The formulas are those of the ``torch.optim`` documentation: for Adam (Kingma & Ba, ICLR 2015)

    g <- g + wd * theta (Adam) | theta <- theta (1 - lr wd) (AdamW, Loshchilov & Hutter, ICLR 2019)
    m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,  (v_max <- max(v_max, v) with AMSGrad)
    theta <- theta - lr m / ((1 - b1^t) (sqrt(v) / sqrt(1 - b2^t) + eps))

and for SGD ``g <- g + wd theta; b <- mu b + (1 - dampening) g`` (``b = g`` at the first step),
``theta <- theta - lr (g + mu b if nesterov else b)``. Tensors broadcast, so one call can look ahead
several candidate gradients at once (a leading candidate dimension on ``param`` and ``grad``).
The step count may be a number or a tensor; the bias corrections are computed in its precision
(``torch.optim`` uses Python floats).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["AdamState", "adam", "adamw", "sgd", "preview_step", "PREVIEWABLE", "UnsupportedOptimizer"]


#: the optimisers whose step :func:`preview_step` can compute
PREVIEWABLE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


class UnsupportedOptimizer(ValueError):
    """An optimiser whose update rule is not one of SGD, Adam and AdamW."""


class AdamState(NamedTuple):
    """Adam's state for one tensor: steps taken so far and the two moment estimates."""

    step: float | Tensor
    exp_avg: Tensor
    exp_avg_sq: Tensor
    #: the running maximum of ``exp_avg_sq`` (AMSGrad only)
    max_exp_avg_sq: Tensor | None = None


def _sqrt(x: float | Tensor) -> float | Tensor:
    return x.sqrt() if isinstance(x, Tensor) else math.sqrt(x)


def adam(
    param: Tensor,
    grad: Tensor,
    state: AdamState | None,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    amsgrad: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, AdamState]:
    """One Adam step: ``(new param, new state)``; ``state=None`` is the first step (zero moments)."""
    beta1, beta2 = betas
    if maximize:
        grad = -grad
    if state is None:
        state = AdamState(0.0, torch.zeros_like(grad), torch.zeros_like(grad))
    if weight_decay:
        if decoupled_weight_decay:
            param = param * (1 - lr * weight_decay)
        else:
            grad = grad + weight_decay * param
    step = state.step + 1
    exp_avg = state.exp_avg.mul(beta1).add(grad, alpha=1 - beta1)
    exp_avg_sq = state.exp_avg_sq.mul(beta2).addcmul(grad, grad, value=1 - beta2)
    max_exp_avg_sq = None
    second = exp_avg_sq
    if amsgrad:
        previous = state.max_exp_avg_sq if state.max_exp_avg_sq is not None else torch.zeros_like(exp_avg_sq)
        max_exp_avg_sq = second = torch.maximum(previous, exp_avg_sq)
    bias1 = 1 - beta1**step
    bias2_sqrt = _sqrt(1 - beta2**step)
    denom = second.sqrt() / bias2_sqrt + eps
    updated = param - lr * exp_avg / (bias1 * denom)
    return updated, AdamState(step, exp_avg, exp_avg_sq, max_exp_avg_sq)


def adamw(
    param: Tensor,
    grad: Tensor,
    state: AdamState | None,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, AdamState]:
    """One AdamW step: Adam with the weight decay applied to the parameter, not added to the gradient."""
    return adam(
        param,
        grad,
        state,
        lr=lr,
        betas=betas,
        eps=eps,
        weight_decay=weight_decay,
        decoupled_weight_decay=True,
        amsgrad=amsgrad,
        maximize=maximize,
    )


def sgd(
    param: Tensor,
    grad: Tensor,
    momentum_buffer: Tensor | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """One SGD step: ``(new param, new momentum buffer)`` (the buffer is None without momentum)."""
    if maximize:
        grad = -grad
    if weight_decay:
        grad = grad.add(param, alpha=weight_decay)
    buffer = None
    if momentum:
        if momentum_buffer is None:
            buffer = grad.clone()
        else:
            buffer = momentum_buffer.mul(momentum).add(grad, alpha=1 - dampening)
        grad = grad.add(buffer, alpha=momentum) if nesterov else buffer
    return param.add(grad, alpha=-lr), buffer


def preview_step(optimizer: torch.optim.Optimizer, param: Tensor, grad: Tensor) -> Tensor:
    """The value ``optimizer.step()`` would give ``param`` if its gradient were ``grad``.

    Reads the optimiser's hyperparameters and its state for ``param``; never writes them.
    ``grad`` may carry leading candidate dimensions (several gradients looked ahead at once).
    A parameter the optimiser does not hold is returned unchanged. SGD, Adam and AdamW only.
    """
    group = next((g for g in optimizer.param_groups if any(p is param for p in g["params"])), None)
    if not isinstance(optimizer, PREVIEWABLE):
        raise UnsupportedOptimizer(f"no update rule for optimizer {type(optimizer).__name__}")
    theta = param.detach()
    if group is None:
        return theta.expand_as(grad).clone()
    state: Mapping[str, Any] = optimizer.state.get(param, {})
    with torch.no_grad():
        if isinstance(optimizer, torch.optim.SGD):
            updated, _ = sgd(
                theta,
                grad,
                state.get("momentum_buffer"),
                lr=float(group["lr"]),
                momentum=group["momentum"],
                dampening=group["dampening"],
                weight_decay=group["weight_decay"],
                nesterov=group["nesterov"],
                maximize=group.get("maximize", False),
            )
            return updated
        previous = None
        if "step" in state:
            previous = AdamState(
                float(state["step"]), state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq")
            )
        decoupled = bool(group.get("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW)))
        updated, _ = adam(
            theta,
            grad,
            previous,
            lr=float(group["lr"]),
            betas=(float(group["betas"][0]), float(group["betas"][1])),
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=decoupled,
            amsgrad=group.get("amsgrad", False),
            maximize=group.get("maximize", False),
        )
        return updated

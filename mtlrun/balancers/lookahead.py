"""Shared pieces of the multi-batch, lookahead and bilevel balancers (sdmgrad, modo, auto_lambda, moml, forum).

- :func:`project_simplex`: Euclidean projection onto the probability simplex, on the device.
- :func:`register_adam` / :func:`adam_update`: Adam (the shared rule of :mod:`mtlrun.balancers.optim_rules`) on a
  balancer's own buffer (task weights or their logits). These methods keep the weights out of the
  model's optimizer, as their papers do; the moments are buffers, so ``state_dict()`` resumes them.
- :func:`trainable` / :func:`lookahead_params` / :func:`upper_batch`: the model's trainable parameters by
  name, a parameter copy after one gradient step (for ``ctx.functional_losses``), and the batch an
  upper-level objective is evaluated on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlrun.balancers.base import Batch, StepContext
from mtlrun.balancers.reweighting import adam_on_buffers
from mtlrun.errors import ConfigError


def project_simplex(v: Tensor) -> Tensor:
    """argmin_{w in simplex} ||w - v|| (Duchi et al., ICML 2008); sort-based, no host sync."""
    n = v.shape[0]
    u, _ = torch.sort(v, descending=True)
    cumulative = u.cumsum(0) - 1.0
    k = torch.arange(1, n + 1, device=v.device, dtype=v.dtype)
    support = (u - cumulative / k > 0).sum()  # the condition holds on a prefix of the sorted values
    theta = cumulative.gather(0, (support - 1).clamp(min=0).unsqueeze(0)) / support.clamp(min=1).to(v.dtype)
    return (v - theta).clamp(min=0.0)


def register_adam(module: nn.Module, name: str) -> None:
    """Give ``module.<name>`` (a buffer) Adam moments and a step count, also buffers."""
    value = getattr(module, name)
    module.register_buffer(f"{name}_exp_avg", torch.zeros_like(value))
    module.register_buffer(f"{name}_exp_avg_sq", torch.zeros_like(value))
    module.register_buffer(f"{name}_adam_steps", torch.zeros((), dtype=value.dtype))


def adam_update(
    module: nn.Module,
    name: str,
    grad: Tensor,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    rows: Tensor | None = None,
) -> None:
    """One Adam step (Kingma & Ba, ICLR 2015) on ``module.<name>`` (the rule of :mod:`mtlrun.balancers.optim_rules`);
    ``rows`` restricts it to those entries (the present tasks)."""
    adam_on_buffers(
        getattr(module, name),
        grad,
        getattr(module, f"{name}_exp_avg"),
        getattr(module, f"{name}_exp_avg_sq"),
        getattr(module, f"{name}_adam_steps"),
        lr=lr,
        betas=betas,
        eps=eps,
        rows=rows,
    )


def trainable(model: nn.Module) -> tuple[list[str], list[nn.Parameter]]:
    """Names and parameters of every trainable parameter of ``model``, in a fixed order."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def columns_of(jacobian: Tensor, params: Sequence[Tensor], chosen: Sequence[Tensor]) -> Tensor:
    """The columns of ``jacobian`` (T, P over ``params``, flattened in order) that belong to ``chosen``
    (a subset of ``params``), concatenated in ``chosen``'s order."""
    spans, offset = {}, 0
    for p in params:
        spans[id(p)] = (offset, offset + p.numel())
        offset += p.numel()
    return torch.cat([jacobian[:, spans[id(p)][0] : spans[id(p)][1]] for p in chosen], dim=1)


def lookahead_params(
    names: Sequence[str], params: Sequence[Tensor], direction: Tensor, step: float
) -> dict[str, Tensor]:
    """``{name: p - step * d}`` as fresh leaves that require grad (``direction`` is flat over ``params``)."""
    out, offset = {}, 0
    for name, p in zip(names, params):
        n = p.numel()
        out[name] = (p.detach() - step * direction[offset : offset + n].view_as(p)).requires_grad_(True)
        offset += n
    return out


def upper_batch(ctx: StepContext, split: str, key: str) -> Batch:
    """The batch an upper-level objective is evaluated on: a validation batch, or the step's extra training batch."""
    if split == "val":
        if ctx.validation_batch is None:
            raise ConfigError(f"{key}=val needs a trainer that provides validation batches")
        return ctx.validation_batch()
    if not ctx.extra_batches:
        raise ConfigError(f"{key}=train needs a second training batch per step")
    return ctx.extra_batches[0]


def require_functional(ctx: StepContext, method: str) -> None:
    if ctx.functional_losses is None:
        raise ConfigError(f"balancer={method} needs a trainer that provides functional losses")

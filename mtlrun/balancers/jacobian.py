"""Per-task gradients on the shared parameters: the task Jacobian J (T x P).

Every gradient method gets J from :func:`task_jacobian`. Two paths compute it:

- ``loop``: one ``autograd.grad`` per task, each also returning that task's own (head)
  parameter gradients. T backward passes, the floor for an exact Jacobian; fastest on CPU.
- ``batched``: one ``autograd.grad`` over the stacked losses with ``is_grads_batched=True``
  (vmap over the T one-hot cotangents); one dispatch, which wins on GPUs.

``mode="auto"`` picks ``loop`` on CPU and ``batched`` elsewhere (see bench/balancers.py).
Gradients never leave the device. Task-specific parameter gradients are accumulated into
``.grad`` as the plain per-task loss gradient, as is standard for gradient balancers.

Loss scaling (``trainer.precision=16``). The trainer runs the balancer inside
:func:`loss_scaling`: every loss it hands out back-propagates ``scale`` times its gradient (its
value is unchanged), so ``.grad`` holds scaled gradients that the optimizer step unscales. This
module is the one place where that meets the gradient methods: :func:`task_jacobian` returns the
*unscaled* J (and raises :class:`GradientOverflow` when the scaled one is not finite, before any
method sees it), and :func:`accumulate_grad` / :func:`rescale` scale an update built from that J
back up, so every entry of ``.grad`` carries the same scale.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

import torch
from torch import Tensor

JacobianMode = Literal["auto", "loop", "batched"]

_SCALE: ContextVar[Tensor | None] = ContextVar("mtlrun_loss_scale", default=None)


class GradientOverflow(ArithmeticError):
    """The scaled per-task gradients overflowed (fp16): the step is skipped and the scale lowered."""


@contextmanager
def loss_scaling(scale: Tensor | None) -> Iterator[None]:
    """Within this block, losses back-propagate ``scale`` times their gradient (None: no scaling)."""
    token = _SCALE.set(scale)
    try:
        yield
    finally:
        _SCALE.reset(token)


def current_scale() -> Tensor | None:
    """The loss scale of the step being computed, or None outside :func:`loss_scaling`."""
    return _SCALE.get()


def unscale(jacobian: Tensor) -> Tensor:
    """J of scaled losses divided by the scale; :class:`GradientOverflow` if it is not finite.

    Always in at least fp32 (the gradient w.r.t. an autocast representation is fp16/bf16), so
    methods solve their problem in full precision.

    The finiteness check reads one flag on the host, the price of fp16 (the optimizer step of a
    gradient scaler reads the same flag).
    """
    if jacobian.dtype in (torch.float16, torch.bfloat16):  # J w.r.t. an autocast representation
        jacobian = jacobian.float()
    scale = _SCALE.get()
    if scale is None:
        return jacobian
    if not bool(torch.isfinite(jacobian).all()):
        raise GradientOverflow("per-task gradients overflowed at the current loss scale")
    return jacobian / scale.to(jacobian)


def rescale(update: Tensor) -> Tensor:
    """An update computed from unscaled gradients, scaled like the rest of ``.grad``."""
    scale = _SCALE.get()
    return update if scale is None else update * scale.to(update)


def resolve_mode(mode: JacobianMode, device: torch.device) -> Literal["loop", "batched"]:
    if mode != "auto":
        return mode
    return "loop" if device.type == "cpu" else "batched"


def flat(tensors: Sequence[Tensor | None], like: Sequence[Tensor], out: Tensor | None = None) -> Tensor:
    """Concatenate gradients into one vector (zeros where a gradient is None), into ``out`` if given."""
    parts = [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(tensors, like)]
    return torch.cat(parts) if out is None else torch.cat(parts, out=out)


def accumulate_grad(params: Sequence[Tensor], vector_or_grads: Tensor | Sequence[Tensor | None]) -> None:
    """Add a flat vector (or a list of per-parameter gradients) into ``p.grad``.

    A flat vector is an update built from unscaled per-task gradients, so it is scaled by the
    current loss scale first; a list holds gradients straight from autograd, already scaled.
    """
    if isinstance(vector_or_grads, Tensor):
        vector_or_grads = rescale(vector_or_grads)
        grads, offset = [], 0
        for p in params:
            n = p.numel()
            grads.append(vector_or_grads[offset : offset + n].view_as(p))
            offset += n
    else:
        grads = list(vector_or_grads)
    for p, g in zip(params, grads):
        if g is None:
            continue
        if p.grad is None:
            p.grad = g.detach().clone()
        else:
            p.grad.add_(g.detach())


def task_jacobian(
    losses: Tensor | Sequence[Tensor],
    shared: Sequence[Tensor],
    task_params: Sequence[Sequence[Tensor]] | None = None,
    *,
    mode: JacobianMode = "auto",
    retain_graph: bool = False,
) -> Tensor:
    """Return J (T, P) of ``losses`` (T,) w.r.t. ``shared``; fill task-specific ``.grad`` if given.

    Pass the T scalar losses as a sequence where they exist apart: a backward pass from row i of a
    stacked tensor sends zero cotangents through every other task's head and loss (``StackBackward``
    does not know they are zero), which costs several percent of a step on a small model.

    J is always unscaled (see the module docstring); the head gradients written to ``.grad`` keep
    the loss scale like every other entry of ``.grad``.

    ``task_params[i]`` are the parameters only task i's loss depends on (its head); their
    gradients are accumulated into ``.grad`` as a side effect, in the same backward passes.
    """
    T = len(losses)
    shared = [p for p in shared if p.requires_grad]
    own = [[p for p in ps if p.requires_grad] for ps in (task_params or [[] for _ in range(T)])]
    device = losses[0].device
    if resolve_mode(mode, device) == "loop":
        # one (T, P) buffer filled row by row (a leaf's gradient has the leaf's dtype): no copy to stack rows
        jac = torch.empty(T, sum(p.numel() for p in shared), device=device, dtype=shared[0].dtype)
        for i, loss in enumerate(losses):
            inputs = [*shared, *own[i]]
            grads = torch.autograd.grad(loss, inputs, retain_graph=retain_graph or i < T - 1, allow_unused=True)
            flat(grads[: len(shared)], shared, out=jac[i])
            accumulate_grad(own[i], grads[len(shared) :])
        return unscale(jac)
    if not isinstance(losses, Tensor):
        losses = torch.stack(list(losses))
    every_own = [p for ps in own for p in ps]
    inputs = [*shared, *every_own]
    eye = torch.eye(T, device=losses.device, dtype=losses.dtype)
    grads = torch.autograd.grad(
        losses, inputs, grad_outputs=eye, is_grads_batched=True, retain_graph=retain_graph, allow_unused=True
    )
    jac = torch.cat(
        [
            (g if g is not None else torch.zeros(T, *p.shape, device=p.device, dtype=p.dtype)).reshape(T, -1)
            for g, p in zip(grads[: len(shared)], shared)
        ],
        dim=1,
    )
    # row i of a task-specific parameter's batched gradient is non-zero only for its own task
    accumulate_grad(every_own, [None if g is None else g.sum(0) for g in grads[len(shared) :]])
    return unscale(jac)


def gramian(jacobian: Tensor) -> Tensor:
    """G = J J^T (T x T), the inner products of task gradients."""
    return jacobian @ jacobian.T

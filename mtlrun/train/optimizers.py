"""The trainer's optimizers: ``torch.optim``'s SGD, Adam and AdamW, without the start-up cost of
their compile hooks.

``torch.optim.Optimizer`` wraps ``step``, ``zero_grad``, ``add_param_group`` and the state-dict
methods in hooks for ``torch.compile`` that import ``torch._dynamo`` on their first call: about
2.3 s of a CPU run's start-up (BENCHMARKS.md), spent before the first step, even though mtlrun
never compiles the optimizer (``trainer.compile`` compiles the model). The classes here call the
same methods of ``torch.optim`` underneath those hooks, so the update, the state dict (checkpoints
stay interchangeable with ``torch.optim``'s) and the LR schedulers are exactly torch's, and
``torch._dynamo`` is imported only when something does compile.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

__all__ = ["SGD", "Adam", "AdamW", "build_optimizer"]


def _unhooked(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` without the ``functools.wraps`` wrappers ``torch.optim`` puts around it."""
    return inspect.unwrap(method)


_add_param_group = _unhooked(Optimizer.add_param_group)
_zero_grad = _unhooked(Optimizer.zero_grad)
_state_dict = _unhooked(Optimizer.state_dict)
_load_state_dict = _unhooked(Optimizer.load_state_dict)


class _WithoutCompileHooks:
    """Mixin placed before a ``torch.optim`` class: the same methods, minus the compile hooks."""

    _torch_step: Callable[..., Any]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _add_param_group(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _zero_grad(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _state_dict(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _load_state_dict(self, state_dict)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        # The grad mode torch's own wrapper sets: on only for a differentiable optimizer.
        previous = torch.is_grad_enabled()
        torch.set_grad_enabled(self.defaults["differentiable"])  # type: ignore[attr-defined]
        try:
            return type(self)._torch_step(self, closure)
        finally:
            torch.set_grad_enabled(previous)


class SGD(_WithoutCompileHooks, torch.optim.SGD):
    """``torch.optim.SGD`` (see the module docstring)."""

    _torch_step = staticmethod(_unhooked(torch.optim.SGD.step))


class Adam(_WithoutCompileHooks, torch.optim.Adam):
    """``torch.optim.Adam`` (Kingma & Ba, ICLR 2015; see the module docstring)."""

    _torch_step = staticmethod(_unhooked(torch.optim.Adam.step))


class AdamW(_WithoutCompileHooks, torch.optim.AdamW):
    """``torch.optim.AdamW`` (Loshchilov & Hutter, ICLR 2019; see the module docstring)."""

    _torch_step = staticmethod(_unhooked(torch.optim.AdamW.step))


def build_optimizer(
    name: str, params: list[dict[str, Any]], lr: float, weight_decay: float, momentum: float
) -> Optimizer:
    """The optimizer ``trainer.optimizer`` names (``adam``, ``adamw`` or ``sgd``)."""
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(params, lr=lr, weight_decay=weight_decay)
    return SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)

"""The trainer's optimizers: ``torch.optim``'s SGD, Adam and AdamW, without the start-up cost of
their compile hooks.

``torch.optim.Optimizer`` wraps ``step``, ``zero_grad``, ``add_param_group`` and the state-dict
methods in hooks for ``torch.compile`` that import ``torch._dynamo`` on their first call: about
2.3 s of a CPU run's start-up (BENCHMARKS.md), spent before the first step, even though mtlrun
never compiles the optimizer (``trainer.compile`` compiles the model). The classes here call the
same methods of ``torch.optim`` underneath those hooks, so the update, the state dict (checkpoints
stay interchangeable with ``torch.optim``'s) and the LR schedulers are exactly torch's, and
``torch._dynamo`` is imported only when something does compile.

Stepping over the hooks relies on how ``torch.optim`` wraps its methods, which is private. So at
import :func:`hook_free_methods` checks that every wrapper is one it knows and every function
beneath is torch's own with the expected signature; on any surprise the classes here are the
public ones, unchanged (:data:`UNHOOKED` is False), which costs start-up time and nothing else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, TypeVar, cast

import torch
from torch.optim import Optimizer

__all__ = ["SGD", "Adam", "AdamW", "UNHOOKED", "build_optimizer", "hook_free_methods"]

#: the wrappers ``torch.optim`` puts around the methods below, by their code's name and file: the
#: compile hook (``torch._disable_dynamo``), the grad-mode wrapper of ``step``
#: (``_use_grad_for_differentiable``) and the step-hook wrapper ``Optimizer.__init__`` adds
KNOWN_HOOKS = frozenset(
    {("inner", "torch/_compile.py"), ("_use_grad", "torch/optim/optimizer.py"), ("wrapper", "torch/optim/optimizer.py")}
)
#: each method stepped over, with the parameters torch's own function must have
BASE_METHODS = {
    "add_param_group": ("self", "param_group"),
    "zero_grad": ("self", "set_to_none"),
    "state_dict": ("self",),
    "load_state_dict": ("self", "state_dict"),
}
STEP_PARAMETERS = ("self", "closure")


def _code_place(function: Any) -> tuple[str, str] | None:
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    path = PurePath(code.co_filename).as_posix()
    marker = path.rfind("torch/")
    return code.co_name, path[marker:] if marker >= 0 else path


def _unhook(owner: type, name: str, parameters: tuple[str, ...]) -> Callable[..., Any] | str:
    """``owner.name`` beneath torch's known wrappers, or why it is not what this module expects.

    Every wrapper stepped over must be one of :data:`KNOWN_HOOKS`, and the function beneath them
    must be torch's own ``name`` (defined in ``torch/optim/``) with exactly ``parameters``. Anything
    else (a wrapper a newer torch adds, a method that moved or changed its signature) is refused, so
    the optimizers fall back to the public classes rather than skip something that matters.
    """
    method = getattr(owner, name, None)
    if method is None:
        return f"{owner.__name__}.{name} is missing"
    while hasattr(method, "__wrapped__"):
        place = _code_place(method)
        if place not in KNOWN_HOOKS:
            return f"{owner.__name__}.{name} has a wrapper this module does not know ({place})"
        method = method.__wrapped__
    place = _code_place(method)
    if place is None or place[0] != name or not place[1].startswith("torch/optim/"):
        return f"{owner.__name__}.{name} is not torch.optim's own function ({place})"
    try:
        found = tuple(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        return f"{owner.__name__}.{name} has no readable signature"
    if found != parameters:
        return f"{owner.__name__}.{name} takes {found}, expected {parameters}"
    return method


def hook_free_methods(
    base: type = Optimizer, classes: tuple[type, ...] = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)
) -> dict[str, Callable[..., Any]] | str:
    """torch's own methods beneath the compile hooks (``{name: function}``, steps as
    ``CLASS.step``), or the first reason why this torch is not the one they were written for.

    The grad mode that ``step``'s wrapper sets is read from ``defaults["differentiable"]``, so every
    class must take that option.
    """
    found: dict[str, Callable[..., Any]] = {}
    for name, parameters in BASE_METHODS.items():
        method = _unhook(base, name, parameters)
        if isinstance(method, str):
            return method
        found[name] = method
    for cls in classes:
        if "differentiable" not in inspect.signature(cls).parameters:
            return f"{cls.__name__} takes no 'differentiable' option"
        step = _unhook(cls, "step", STEP_PARAMETERS)
        if isinstance(step, str):
            return step
        found[f"{cls.__name__}.step"] = step
    return found


_FOUND = hook_free_methods()
#: why the optimizers are the public classes on this torch (None where they step over the hooks)
FALLBACK_REASON: str | None = _FOUND if isinstance(_FOUND, str) else None
_METHODS: dict[str, Callable[..., Any]] = {} if isinstance(_FOUND, str) else _FOUND
#: whether the optimizers step over torch's compile hooks; False where this torch's methods are
#: not the ones expected: the classes are then torch's public ones, unchanged
UNHOOKED = FALLBACK_REASON is None


class _WithoutCompileHooks:
    """Mixin placed before a ``torch.optim`` class: the same methods, minus the compile hooks."""

    _torch_step: Callable[..., Any]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _METHODS["add_param_group"](self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _METHODS["zero_grad"](self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = _METHODS["state_dict"](self)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _METHODS["load_state_dict"](self, state_dict)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        # The grad mode torch's own wrapper sets: on only for a differentiable optimizer.
        previous = torch.is_grad_enabled()
        torch.set_grad_enabled(self.defaults["differentiable"])  # type: ignore[attr-defined]
        try:
            return type(self)._torch_step(self, closure)
        finally:
            torch.set_grad_enabled(previous)


TorchOptimizer = TypeVar("TorchOptimizer", bound=Optimizer)


def _optimizer(torch_class: type[TorchOptimizer], doc: str) -> type[TorchOptimizer]:
    """``torch_class`` without its compile hooks where they are as expected, else a plain subclass."""
    attributes: dict[str, Any] = {"__doc__": doc, "__module__": __name__}
    if not UNHOOKED:
        return cast(type[TorchOptimizer], type(torch_class.__name__, (torch_class,), attributes))
    attributes["_torch_step"] = staticmethod(_METHODS[f"{torch_class.__name__}.step"])
    return cast(type[TorchOptimizer], type(torch_class.__name__, (_WithoutCompileHooks, torch_class), attributes))


SGD = _optimizer(torch.optim.SGD, "``torch.optim.SGD`` (see the module docstring).")
Adam = _optimizer(torch.optim.Adam, "``torch.optim.Adam`` (Kingma & Ba, ICLR 2015; see the module docstring).")
AdamW = _optimizer(
    torch.optim.AdamW, "``torch.optim.AdamW`` (Loshchilov & Hutter, ICLR 2019; see the module docstring)."
)


def build_optimizer(
    name: str, params: list[dict[str, Any]], lr: float, weight_decay: float, momentum: float
) -> Optimizer:
    """The optimizer ``trainer.optimizer`` names (``adam``, ``adamw`` or ``sgd``)."""
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(params, lr=lr, weight_decay=weight_decay)
    return SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)

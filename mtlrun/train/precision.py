"""Mixed precision: ``trainer.precision=32|bf16|16``.

``bf16`` and ``16`` run the forward passes (the step's, and those of the trainer's loss closures)
under ``torch.autocast`` for the trainer's device; backward passes and the balancers' own algebra
(Gramians, QPs, projections) stay outside it, in the parameters' fp32. ``16`` also scales the
losses with a ``torch.amp.GradScaler`` so small fp16 gradients do not flush to zero.

The scale is applied without changing a loss's value: :func:`scale_gradient` is the identity
forward and multiplies the gradient by the scale backward. Balancers therefore see true losses
(loss-based weightings, logs and ratios are unaffected) and every ``.grad`` they fill is scaled;
the gradient methods unscale per-task gradients before aggregating them (the rule of
``mtlrun.balancers.jacobian``), and :meth:`Precision.step` unscales ``.grad`` once, clips, steps,
and updates the scale.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import Balancer
from mtlrun.balancers.jacobian import loss_scaling
from mtlrun.config.schema import PRECISIONS
from mtlrun.errors import ConfigError, choices_error

_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``scale`` backward."""

    @staticmethod
    def forward(ctx: Any, value: Tensor, scale: Tensor) -> Tensor:
        ctx.save_for_backward(scale)
        return value.view_as(value)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (scale,) = ctx.saved_tensors
        return grad * scale.to(grad), None


def scale_gradient(value: Tensor, scale: Tensor | None) -> Tensor:
    """``value`` unchanged, back-propagating ``scale`` times its gradient (unchanged without a scale)."""
    if scale is None or not value.requires_grad:
        return value
    return _ScaleGradient.apply(value, scale)


def normalise(value: Any) -> str:
    """``trainer.precision`` as one of :data:`PRECISIONS` (YAML reads ``32`` and ``16`` as ints)."""
    text = str(value).lower()
    if text not in PRECISIONS:
        raise choices_error("trainer.precision", value, PRECISIONS)
    return text


class Precision:
    """Autocast for forward passes and, at fp16, the gradient scaler of the optimizer step."""

    def __init__(self, precision: Any, device: torch.device) -> None:
        self.name = normalise(precision)
        self.device = device
        self.dtype = _DTYPES.get(self.name)
        if self.dtype is not None and not torch.amp.is_autocast_available(device.type):
            raise ConfigError(f"trainer.precision={self.name} is not available on device {device.type}; use 32")
        self.scaler = torch.amp.GradScaler(device.type) if self.name == "16" else None
        self._one: Tensor | None = None

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def check(self, balancer: Balancer, name: str) -> None:
        """Refuse a balancer that cannot work under fp16 loss scaling."""
        if self.scaler is not None and not balancer.supports_loss_scaling:
            raise ConfigError(
                f"balancer={name} takes lookahead steps on raw gradients and cannot run with trainer.precision=16; "
                "use trainer.precision=bf16 or 32"
            )

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context of a forward pass (a no-op at fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scale(self) -> Tensor | None:
        """The current loss scale as a device tensor (no host sync), or None without a scaler."""
        if self.scaler is None:
            return None
        if self._one is None:
            self._one = torch.ones((), device=self.device)
        return self.scaler.scale(self._one)

    @contextlib.contextmanager
    def scaling(self, scale: Tensor | None) -> Iterator[None]:
        """The block in which a balancer computes gradients of losses scaled by ``scale``."""
        with loss_scaling(scale):
            yield

    @staticmethod
    def match_scale(params: list[torch.nn.Parameter], scale: Tensor | None) -> None:
        """Scale the gradients of a balancer's own weights like the model's.

        They are gradients *of* the objective with respect to weights applied to loss values, not
        gradients flowing back *through* the losses, so the loss scale never reached them.
        """
        if scale is None:
            return
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale.to(p.grad))

    def step(self, optimizer: torch.optim.Optimizer, clip: Callable[[], None] | None) -> None:
        """Unscale ``.grad`` (fp16), clip, step (skipped on overflow at fp16), update the scale."""
        if self.scaler is None:
            if clip is not None:
                clip()
            optimizer.step()
            return
        self.scaler.unscale_(optimizer)
        if clip is not None:
            clip()
        self.scaler.step(optimizer)
        self.scaler.update()

    def skip_overflow(self) -> None:
        """A step whose per-task gradients overflowed: no update, and a lower scale (fp16 only)."""
        assert self.scaler is not None
        scale = self.scaler.get_scale()
        self.scaler.update(scale * self.scaler.get_backoff_factor())

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

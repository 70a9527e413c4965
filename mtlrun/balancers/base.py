"""The balancer contract: one entry point, ``backward(losses, ctx) -> BalanceInfo``.

Three kinds share it, so the trainer never asks which kind it holds:

- :class:`LossWeighting` decides task weights from the losses and does one backward of
  ``sum_t w_t L_t`` (plus any term of its own, e.g. uncertainty weighting's regulariser).
- :class:`GradientAggregator` gets the task Jacobian J (T x P) on the shared parameters (or, with
  ``rep_grad=True``, on the shared representation) and aggregates it into an update direction
  (P,) or task weights (T,). Weight-returning methods honour ``update_every=N``: J and the
  weights are recomputed every N steps and the steps between reuse the weights with one plain
  weighted backward.
- Multi-batch and bilevel methods declare ``batches_per_step > 1`` and/or use the closures the
  trainer provides (``ctx.compute_losses``, ``ctx.validation_batch``, ``ctx.functional_losses``);
  nothing in the trainer names them.

A balancer is an ``nn.Module``: learnable weights (uncertainty weighting's log-variances) are
``nn.Parameter`` s that the trainer optimises with the model; any other state is kept in buffers
so that ``state_dict()`` checkpoints and resumes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad, task_jacobian
from mtlrun.errors import ConfigError
from mtlrun.registry import Registry

BALANCERS: Registry[Balancer] = Registry("balancer")

Batch = tuple[Tensor, dict[str, Tensor]]


@dataclass
class StepContext:
    """What a balancer may read about the current step. It never reaches into the trainer."""

    model: nn.Module
    shared_params: list[nn.Parameter]
    task_params: dict[str, list[nn.Parameter]]
    epoch: int
    step: int
    #: the shared representation (graph to the encoder) and the detached leaf the heads read,
    #: present when the balancer sets ``needs_representation``
    representation: Tensor | None = None
    representation_input: Tensor | None = None
    #: extra batches for methods with ``batches_per_step > 1`` (the step's own batch excluded)
    extra_batches: list[Batch] = field(default_factory=list)
    #: recompute ``{task: loss}`` on a batch with the model's current parameters
    compute_losses: Callable[[Batch], dict[str, Tensor]] | None = None
    #: the optimizer's current learning rate (for lookahead and bilevel methods)
    lr: float = 0.0
    batch: Batch | None = None
    # -- closures for lookahead and bilevel methods --
    #: draw the next batch of the validation split (the trainer's own seeded order, cycling)
    validation_batch: Callable[[], Batch] | None = None
    #: ``{task: loss}`` of the model evaluated with ``params`` (``{name: tensor}``, a subset of
    #: ``model.named_parameters()``) in place of its own, on a batch; differentiable w.r.t. ``params``.
    #: Buffers (batch-norm statistics) are not updated by these evaluations.
    functional_losses: Callable[[dict[str, Tensor], Batch], dict[str, Tensor]] | None = None


@dataclass
class BalanceInfo:
    """What a balancer decided at one step."""

    #: effective task weights (T,), when the method has them
    weights: Tensor | None = None
    #: the task Jacobian on the shared parameters, when computed (diagnostics reuse it)
    jacobian: Tensor | None = None
    #: anything else worth logging (solver failures, norms), scalars or tensors
    extras: dict[str, Any] = field(default_factory=dict)


class Balancer(nn.Module, ABC):
    """Base class. Subclasses take ``tasks`` (the run's task names) plus their own options."""

    #: the trainer must split forward into encode/decode and expose the representation
    needs_representation: bool = False
    #: batches drawn per optimisation step (>1 for multi-batch methods)
    batches_per_step: int = 1
    #: works on per-task gradients of the shared parameters (needs an architecture that has some)
    uses_task_gradients: bool = False
    #: buffers whose size is known only at the first step (e.g. per-parameter statistics): on
    #: loading a checkpoint they take the checkpoint's shape instead of failing on a size mismatch
    resizable_buffers: tuple[str, ...] = ()

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self._warned: set[str] = set()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in self.resizable_buffers:
            incoming, current = state_dict.get(prefix + name), self._buffers.get(name)
            if isinstance(incoming, Tensor) and current is not None and incoming.shape != current.shape:
                self._buffers[name] = torch.empty(incoming.shape, dtype=current.dtype, device=current.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @abstractmethod
    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        """Fill ``.grad`` of every trainable parameter from ``losses`` and say what was decided."""

    def stack(self, losses: dict[str, Tensor]) -> Tensor:
        return torch.stack([losses[t] for t in self.tasks])

    def warn_once(self, key: str, message: str, info: BalanceInfo) -> None:
        """Warn the first time ``key`` happens (e.g. a solver failure) and record it in ``info``."""
        import logging

        info.extras[key] = info.extras.get(key, 0) + 1
        if key not in self._warned:
            self._warned.add(key)
            logging.getLogger("mtlrun.balancer").warning(message)


class LossWeighting(Balancer):
    """Loss-weighting methods: one backward of the weighted sum of losses."""

    @abstractmethod
    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        """Task weights (T,) for the current ``losses`` (T,)."""

    def objective(self, losses: Tensor, weights: Tensor) -> Tensor:
        """The scalar that is back-propagated; ``sum_t w_t L_t`` unless a method adds terms."""
        return (weights * losses).sum()

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        weights = self.weights(stacked, ctx)
        self.objective(stacked, weights).backward()
        return BalanceInfo(weights=weights.detach())


class GradientAggregator(Balancer):
    """Gradient methods: aggregate the task Jacobian into one update.

    ``aggregate(J)`` returns either a direction (P,) or task weights (T,); in the latter case the
    direction is ``w @ J`` and ``update_every`` may reuse the weights between recomputations.
    """

    uses_task_gradients = True
    resizable_buffers = ("cached_weights",)

    def __init__(
        self, tasks: Sequence[str], rep_grad: bool = False, update_every: int = 1, jacobian_mode: JacobianMode = "auto"
    ) -> None:
        super().__init__(tasks)
        if update_every < 1:
            raise ConfigError(f"balancer.update_every={update_every} must be >= 1")
        if jacobian_mode not in ("auto", "loop", "batched"):
            raise ConfigError(
                f"balancer.jacobian_mode={jacobian_mode} is not valid; choose one of: auto, batched, loop"
            )
        self.rep_grad = rep_grad
        self.needs_representation = rep_grad
        self.update_every = update_every
        self.jacobian_mode = jacobian_mode
        self.register_buffer("cached_weights", torch.zeros(0), persistent=True)

    @abstractmethod
    def aggregate(self, jacobian: Tensor) -> Tensor:
        """Map the task Jacobian (T, P) to an update direction (P,) or task weights (T,)."""

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        if self.cached_weights.numel() == self.num_tasks and ctx.step % self.update_every != 0:
            weights = self.cached_weights.to(stacked)
            (weights * stacked).sum().backward()
            if self.rep_grad and ctx.representation is not None and ctx.representation_input is not None:
                ctx.representation.backward(ctx.representation_input.grad)  # the encoder is past the detached leaf
            return BalanceInfo(weights=weights)
        own = [ctx.task_params[t] for t in self.tasks]
        if self.rep_grad:
            if ctx.representation is None or ctx.representation_input is None:
                raise ConfigError("balancer.rep_grad=true needs an architecture with a shared representation")
            rep_in = ctx.representation_input
            jac = task_jacobian(stacked, [rep_in], own, mode=self.jacobian_mode)
        else:
            jac = task_jacobian(stacked, ctx.shared_params, own, mode=self.jacobian_mode)
        decision = self.aggregate(jac)
        info = BalanceInfo(jacobian=None if self.rep_grad else jac)
        if decision.shape == (self.num_tasks,):
            info.weights = decision.detach()
            direction = decision @ jac
            if self.update_every > 1:
                self.cached_weights = decision.detach().clone()
        else:
            direction = decision
        if self.rep_grad:
            ctx.representation.backward(direction.view_as(ctx.representation))
        else:
            accumulate_grad([p for p in ctx.shared_params if p.requires_grad], direction)
        return info

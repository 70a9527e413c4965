"""The balancer contract: one entry point, ``backward(losses, ctx) -> BalanceInfo``.

Three kinds share it, so the trainer never asks which kind it holds:

- :class:`LossWeighting` decides task weights from the losses and does one backward of
  ``sum_t w_t L_t`` (plus any term of its own, e.g. uncertainty weighting's regulariser).
- :class:`GradientAggregator` gets the task Jacobian J (T x P) on the shared parameters (or, with
  ``rep_grad=True``, on the shared representation) and turns it into one update. A subclass
  declares what its hook returns: ``output = "weights"`` and a :meth:`~GradientAggregator.weights`
  hook giving task weights (T,) (the update is ``w @ J``; ``update_every=N`` may reuse them between
  recomputations), or ``output = "direction"`` and a :meth:`~GradientAggregator.direction` hook
  giving the update (P,) itself. The base class owns the template: Jacobian, cached weights,
  representation or parameter update, head gradients.
- Multi-batch and bilevel methods declare ``batches_per_step > 1`` and/or use the closures the
  trainer provides (``ctx.compute_losses``, ``ctx.validation_batch``, ``ctx.functional_losses``);
  nothing in the trainer names them.

The same balancers run in a training loop of one's own: every class is importable by name from
``mtlrun.balancers``, can be built without ``tasks`` (they are the first losses' keys, then fixed:
:mod:`mtlrun.balancers.deferred`) and takes ``backward(losses, shared_params=..., ...)``, which builds
the StepContext the trainer would (:mod:`mtlrun.balancers.own_loop`). What a method reads beyond the
losses and the parameters it declares in :meth:`Balancer.context_needs`, so a plain loop that does
not pass it gets a one-line error naming the keyword. :func:`mtlrun.testing.check_balancer` checks a
class of one's own against the properties every built-in balancer has.

A balancer is an ``nn.Module``: learnable weights (uncertainty weighting's log-variances) are
``nn.Parameter`` s that the trainer optimises with the model; any other state is kept in buffers
so that ``state_dict()`` checkpoints and resumes it.

:meth:`Balancer.returns_jacobian` says, before a step, whether ``backward`` will put the task
Jacobian of the given losses on ``ctx.shared_params`` into ``BalanceInfo.jacobian``, so that
diagnostics need not compute it again.

Loss scaling (``trainer.precision=16``). The trainer calls ``backward`` inside
:func:`~mtlrun.balancers.jacobian.loss_scaling`: the losses a balancer receives (and those of the
trainer's closures) have their true values but back-propagate ``scale`` times their gradient, and
``.grad`` is unscaled once, by the optimizer step. So a plain ``.backward()`` needs nothing, and
the rule for anything that reads gradients is: **per-task gradients are unscaled before any
aggregation, norm or projection**. It lives in one place, :mod:`mtlrun.balancers.jacobian`:
``task_jacobian`` returns the unscaled J (raising ``GradientOverflow`` before a method sees a
non-finite one), and ``accumulate_grad`` of a flat update (or ``rescale``) scales the result back.
A balancer's own learnable weights (``uw``'s log-variances) are differentiated with respect to
weights on loss values, not through the losses, so the trainer scales their gradients to match.
A method that reads gradients any other way (lookahead and bilevel steps taken with raw
``autograd.grad``) sets ``supports_loss_scaling = False`` and is refused at fp16.

Missing labels. ``ctx.present`` (bool, (T,)) marks the tasks with at least one label in the batch;
an absent task's loss is an exact 0 that still has a graph. No absent task contributes a gradient,
and every output stays finite:

- loss weighting multiplies the zero loss (``ew``, ``fixed``, ``rlw``); methods with terms or state
  of their own leave an absent task out of them: ``uw`` and IMTL-L drop its regulariser (its scale
  does not move), ``gls`` and ``stch`` take the geometric mean / smooth maximum over the present
  tasks, and ``dwa``, ``famo``, ``gradnorm``, ``db_mtl`` and ``excess_mtl`` never take ``log(0)`` or
  divide by a zero loss: an absent task's statistics, logits or weight stay as they were;
- gradient aggregators solve their problem on the present rows of J only (MGDA over the present
  tasks, PCGrad skips the absent row, Nash-MTL bargains among the present tasks) and give an
  absent task weight 0; stateful ones (``gradvac``, ``moco``, ``excess_mtl``) update the state of
  the present tasks only;
- multi-batch and bilevel methods give an absent task weight 0 in the combination of the step's
  Jacobian; ``auto_lambda``, ``moml`` and ``forum`` also leave its weight state (and Adam moments)
  unchanged, while ``modo`` and ``sdmgrad`` keep estimating their weights on the extra batches.

A short example, equal weighting on two toy losses of one shared parameter::

    >>> import torch
    >>> from mtlrun.balancers import BALANCERS, StepContext
    >>> theta = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    >>> losses = {"a": (theta**2).sum(), "b": (3 * theta).sum()}
    >>> ew = BALANCERS.build("ew", {}, tasks=["a", "b"])
    >>> ctx = StepContext(model=torch.nn.Module(), shared_params=[theta], task_params={}, epoch=1, step=0)
    >>> ew.returns_jacobian(step=0)
    False
    >>> info = ew.backward(losses, ctx)
    >>> theta.grad  # d/dtheta of L_a + L_b = 2 theta + 3
    tensor([5., 7.])
    >>> info.weights
    tensor([1., 1.])

MGDA, a gradient aggregator, returns the Jacobian it solved on::

    >>> theta.grad = None
    >>> losses = {"a": (theta**2).sum(), "b": (3 * theta).sum()}
    >>> mgda = BALANCERS.build("mgda", {}, tasks=["a", "b"])
    >>> mgda.returns_jacobian(step=0)
    True
    >>> info = mgda.backward(losses, ctx)
    >>> info.jacobian
    tensor([[2., 4.],
            [3., 3.]])
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor, nn

from mtlrun.balancers import deferred, own_loop
from mtlrun.balancers.jacobian import JacobianMode, accumulate_grad, rescale, task_jacobian
from mtlrun.errors import ConfigError
from mtlrun.plugins.resolve import subclass_contract
from mtlrun.registry import Registry

BALANCERS: Registry[Balancer] = Registry("balancer")

Batch = tuple[Tensor, dict[str, Tensor]]

Output = Literal["weights", "direction"]


class Collective(Protocol):
    """The data-parallel collectives a gradient method uses (``mtlrun.train.distributed``): the
    losses it is given are already global means, whose gradients are this rank's share."""

    #: per-rank weights averaged instead of the Jacobian all-reduced (``trainer.data_parallel``)
    average_weights: bool
    #: this rank's share of the step batch's rows
    fraction: float

    def sum(self, tensor: Tensor) -> Tensor: ...
    def mean(self, tensor: Tensor) -> Tensor: ...
    def gather(self, tensor: Tensor) -> tuple[Tensor, slice]: ...
    def mark_synced(self, params: Sequence[Tensor]) -> None: ...


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
    #: the step's task losses (T,), detached, in ``balancer.tasks`` order and as the balancer sees
    #: them (after any schedule multipliers); set by the base classes before a method's hook runs
    losses: Tensor | None = None
    #: bool (T,): which tasks have at least one label in this batch; None means all of them. The
    #: trainer sets it only for datasets with missing labels.
    present: Tensor | None = None
    #: data parallel only: the collectives that make the per-rank Jacobian the global one
    collective: Collective | None = None


@dataclass
class BalanceInfo:
    """What a balancer decided at one step."""

    #: effective task weights (T,), when the method has them
    weights: Tensor | None = None
    #: the task Jacobian (T, P) of the given losses on the trainable ``ctx.shared_params`` (flattened
    #: and concatenated in that order), exactly when ``returns_jacobian(step)`` said so; else None
    jacobian: Tensor | None = None
    #: anything else worth logging (solver failures, norms), scalars or tensors
    extras: dict[str, Any] = field(default_factory=dict)


def present_rows(present: Tensor | None) -> Tensor | None:
    """Indices of the present tasks, or None when every task is present (nothing to select)."""
    if present is None or bool(present.all()):
        return None
    return present.nonzero().flatten()


def select_present(values: Tensor, present: Tensor | None) -> Tensor:
    """The entries (rows) of ``values`` that belong to present tasks (all of them when ``present`` is None)."""
    rows = present_rows(present)
    return values if rows is None else values[rows]


def expand_present(values: Tensor, present: Tensor | None, num_tasks: int) -> Tensor:
    """Inverse of :func:`select_present` for a vector: absent tasks get 0."""
    rows = present_rows(present)
    if rows is None:
        return values
    full = torch.zeros(num_tasks, dtype=values.dtype, device=values.device)
    full[rows] = values
    return full


def weighted_backward(weights: Tensor, losses: Tensor, ctx: StepContext) -> None:
    """Back-propagate ``sum_t w_t L_t`` (``weights`` constant) into every parameter's ``.grad``,
    also through a split forward (``ctx.representation``), where the losses reach the encoder only
    through the representation."""
    (weights.detach() * losses).sum().backward()
    rep, rep_in = ctx.representation, ctx.representation_input
    # a plain loop's representation is not split (rep_in is rep): the backward above reached the encoder
    if rep is not None and rep_in is not None and rep_in is not rep and rep_in.grad is not None:
        rep.backward(rep_in.grad)


class Balancer(nn.Module, ABC):
    """Base class. Subclasses take ``tasks`` (the run's task names) plus their own options.

    Every subclass can also be built without ``tasks`` and called as ``backward(losses, **keywords)``
    in a loop of one's own (:mod:`mtlrun.balancers.own_loop`, :mod:`mtlrun.balancers.deferred`).
    """

    #: the trainer must split forward into encode/decode and expose the representation
    needs_representation: bool = False
    #: batches drawn per optimisation step (>1 for multi-batch methods)
    batches_per_step: int = 1
    #: works on per-task gradients of the shared parameters (needs an architecture that has some)
    uses_task_gradients: bool = False
    #: buffers whose size is known only at the first step (e.g. per-parameter statistics): on
    #: loading a checkpoint they take the checkpoint's shape instead of failing on a size mismatch
    resizable_buffers: tuple[str, ...] = ()
    #: works under fp16 loss scaling: reads gradients only through ``task_jacobian`` (see above)
    supports_loss_scaling: bool = True
    #: under data parallelism (``trainer.devices > 1``) makes one process's update: it reads the
    #: losses, or gradients through the template's Jacobian (``ctx.collective``); methods that take
    #: per-task gradients of their own set False and are refused there
    data_parallel_exact: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own_loop.install(cls, StepContext)  # construction without tasks, and the keyword form of backward

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self._warned: set[str] = set()
        self._pending_warnings: list[tuple[str, str]] = []

    def context_needs(self) -> dict[str, str]:
        """The step-context entries this method reads beyond the losses and the parameters, each with
        why: ``{"validation_batch": "its upper level ..."}``. The trainer always provides them; in a
        plain loop they are keywords of ``backward``, and a missing one is a one-line error."""
        return {}

    # ---- a balancer built without tasks is pending until its first backward (mtlrun.balancers.deferred) ----

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        record = deferred.pending(self)
        if record is not None:  # .to(), .double(), ...: replayed on the built balancer
            record.conversions.append(fn)
        return super()._apply(fn, *args, **kwargs)

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        record = deferred.pending(self)
        if record is not None:
            return deferred.state_dict(record, *args, **kwargs)
        return super().state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        record = deferred.pending(self)
        if record is not None:
            return deferred.load_state_dict(record, state_dict)
        return super().load_state_dict(state_dict, *args, **kwargs)

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

    @abstractmethod
    def returns_jacobian(self, step: int) -> bool:
        """Whether ``backward`` at ``step`` will put the (T, P) Jacobian of the losses it is given on
        the trainable ``ctx.shared_params`` into ``BalanceInfo.jacobian``. Asked before that step."""

    def stack(self, losses: dict[str, Tensor]) -> Tensor:
        return torch.stack(self.task_losses(losses))

    def task_losses(self, losses: dict[str, Tensor]) -> list[Tensor]:
        """The losses in task order, unstacked: what :func:`task_jacobian` back-propagates from."""
        return [losses[t] for t in self.tasks]

    def step_context(self, ctx: StepContext, stacked: Tensor) -> StepContext:
        """A copy of ``ctx`` carrying the step's losses as this balancer sees them (detached)."""
        return replace(ctx, losses=stacked.detach())

    def warn_once(self, key: str, message: str, info: BalanceInfo) -> None:
        """Warn the first time ``key`` happens (e.g. a solver failure) and record it in ``info``."""
        info.extras[key] = info.extras.get(key, 0) + 1
        if key not in self._warned:
            self._warned.add(key)
            logging.getLogger("mtlrun.balancer").warning(message)

    def solver_failed(self, key: str, message: str) -> None:
        """Record a failure inside a hook; the step's ``backward`` warns once and counts it in ``info.extras``."""
        self._pending_warnings.append((key, message))

    def report_failures(self, info: BalanceInfo) -> None:
        """Move the failures recorded during this step into ``info`` (see :meth:`solver_failed`)."""
        for key, message in self._pending_warnings:
            self.warn_once(key, message, info)
        self._pending_warnings = []


class LossWeighting(Balancer):
    """Loss-weighting methods: one backward of the weighted sum of losses.

    The contract: implement :meth:`weights` (task weights (T,) from the step's losses (T,), in
    ``self.tasks`` order); override :meth:`objective` to back-propagate more than ``sum_t w_t L_t``.
    Keep state in buffers (``register_buffer``) and learnable weights in ``nn.Parameter`` s.
    """

    @abstractmethod
    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        """Task weights (T,) for the current ``losses`` (T,)."""

    def objective(self, losses: Tensor, weights: Tensor, ctx: StepContext) -> Tensor:
        """The scalar that is back-propagated; ``sum_t w_t L_t`` unless a method adds terms."""
        return (weights * losses).sum()

    def returns_jacobian(self, step: int) -> bool:
        return False  # one backward of a scalar: no per-task gradients are formed

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        ctx = self.step_context(ctx, stacked)
        weights = self.weights(stacked, ctx)
        self.objective(stacked, weights, ctx).backward()
        info = BalanceInfo(weights=weights.detach())
        self.report_failures(info)
        return info


def _overridden(cls: type, name: str) -> bool:
    return getattr(cls, name) is not getattr(GradientAggregator, name)


class GradientAggregator(Balancer):
    """Gradient methods: aggregate the task Jacobian into one update (see the module docstring).

    The contract: a subclass sets ``output`` and overrides exactly the hook of that name; this is
    checked when the class is created. ``output = "weights"``: :meth:`weights` returns task weights
    (T',) and the update is ``w @ J`` (so ``update_every`` may reuse them); ``output = "direction"``:
    :meth:`direction` returns the update (P,) itself. The hook sees J restricted to the present tasks
    (all of them unless ``ctx.present`` says otherwise) and ``ctx.losses``; weights it returns are for
    those rows. The template does the rest: the Jacobian (on the shared parameters or, with
    ``rep_grad``, the representation), the heads' gradients (``head_gradients``), the cached weights.
    """

    #: what the method's hook returns: task weights (T,) or an update direction (P,)
    output: ClassVar[Output]
    #: how each task's own (head) parameters are updated: ``task``, its plain loss gradient (the usual
    #: choice of gradient balancers); ``weighted``, that gradient times the task's weight (methods whose
    #: update is ``sum_t w_t grad L_t`` on every parameter; needs ``output = "weights"``)
    head_gradients: ClassVar[Literal["task", "weighted"]] = "task"

    uses_task_gradients = True
    resizable_buffers = ("cached_weights",)
    #: the last weights, reused between recomputations when ``update_every > 1`` (a buffer)
    cached_weights: Tensor

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hooks = {name for name in ("weights", "direction") if _overridden(cls, name)}
        declared = getattr(cls, "output", None)
        if declared is None:
            if hooks:
                raise TypeError(
                    f"{cls.__name__} overrides {', '.join(sorted(hooks))} but declares no output; "
                    'set output = "weights" or output = "direction"'
                )
            return  # an intermediate base class (e.g. GramianAggregator)
        if declared not in ("weights", "direction"):
            raise TypeError(f"{cls.__name__}.output={declared!r} must be 'weights' or 'direction'")
        if hooks != {declared}:
            raise TypeError(
                f"{cls.__name__} declares output={declared!r} and must override exactly the {declared}() hook; "
                f"it overrides: {', '.join(sorted(hooks)) or 'neither'}"
            )
        if cls.head_gradients == "weighted" and declared != "weights":
            raise TypeError(f"{cls.__name__}: head_gradients='weighted' needs output='weights'")

    def __init__(
        self, tasks: Sequence[str], rep_grad: bool = False, update_every: int = 1, jacobian_mode: JacobianMode = "auto"
    ) -> None:
        super().__init__(tasks)
        if getattr(type(self), "output", None) is None:
            raise TypeError(f"{type(self).__name__} declares no output; it cannot be used as a balancer")
        if update_every < 1:
            raise ConfigError(f"balancer.update_every={update_every} must be >= 1")
        if update_every > 1 and self.output != "weights":
            raise ConfigError(
                f"balancer.update_every={update_every} needs a method that returns task weights; "
                f"{type(self).__name__} returns an update direction"
            )
        if jacobian_mode not in ("auto", "loop", "batched"):
            raise ConfigError(
                f"balancer.jacobian_mode={jacobian_mode} is not valid; choose one of: auto, batched, loop"
            )
        self.rep_grad = rep_grad
        self.needs_representation = rep_grad
        self.update_every = update_every
        self.jacobian_mode = jacobian_mode
        self.register_buffer("cached_weights", torch.zeros(0), persistent=True)

    # ---- the hooks (a subclass overrides the one its ``output`` names) ----

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        """Task weights (T',) for the Jacobian (T', P) of the present tasks; the update is ``w @ J``."""
        raise TypeError(f"{type(self).__name__} returns an update direction, not weights")

    def direction(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        """The update direction (P,) from the Jacobian (T', P) of the present tasks."""
        raise TypeError(f"{type(self).__name__} returns task weights, not a direction")

    # ---- the template ----

    def reuses_weights(self, step: int) -> bool:
        """Whether ``step`` reuses the cached weights (``update_every > 1``, between recomputations)."""
        return self.cached_weights.numel() == self.num_tasks and step % self.update_every != 0

    def returns_jacobian(self, step: int) -> bool:
        return not self.rep_grad and not self.reuses_weights(step)

    def gradient_inputs(self, ctx: StepContext) -> list[Tensor]:
        """What J is taken with respect to: the trainable shared parameters, or the representation."""
        if not self.rep_grad:
            return [p for p in ctx.shared_params if p.requires_grad]
        if ctx.representation is None or ctx.representation_input is None:
            raise ConfigError("balancer.rep_grad=true needs an architecture with a shared representation")
        return [ctx.representation_input]

    def backward(self, losses: dict[str, Tensor], ctx: StepContext) -> BalanceInfo:
        stacked = self.stack(losses)
        ctx = self.step_context(ctx, stacked)
        if self.reuses_weights(ctx.step):
            weights = self.cached_weights.to(stacked)
            weighted_backward(weights, stacked, ctx)
            return BalanceInfo(weights=weights)
        inputs = self.gradient_inputs(ctx)
        plain_heads = self.head_gradients == "task"
        own = [ctx.task_params.get(t, []) for t in self.tasks] if plain_heads else None
        jac = task_jacobian(
            self.task_losses(losses), inputs, own, mode=self.jacobian_mode, retain_graph=not plain_heads
        )
        collective, columns, local = ctx.collective, None, None
        if collective is not None:  # data parallel: every rank aggregates the global Jacobian
            if self.rep_grad:  # per-sample rows: the ranks' columns side by side
                jac, columns = collective.gather(jac)
            elif collective.average_weights and self.output == "weights":  # approximate: local J, mean weights
                local, jac = jac, jac / collective.fraction
            else:
                jac = collective.sum(jac)
        info = BalanceInfo(jacobian=None if self.rep_grad or local is not None else jac)
        present = select_present(jac, ctx.present)
        if self.output == "weights":
            weights = expand_present(self.weights(present, ctx).to(jac), ctx.present, self.num_tasks)
            if local is not None:
                assert collective is not None
                weights, jac = collective.mean(weights), local
            info.weights = weights.detach()
            if not plain_heads:
                heads = [p for t in self.tasks for p in ctx.task_params.get(t, []) if p.requires_grad]
                if heads:
                    grads = torch.autograd.grad((weights * stacked).sum(), heads, allow_unused=True)
                    accumulate_grad(heads, grads)
            direction = weights @ jac
            if self.update_every > 1:
                self.cached_weights = weights.detach().clone()
        else:
            direction = self.direction(present, ctx)
        if self.rep_grad:
            assert ctx.representation is not None
            rep = ctx.representation
            if columns is not None:  # this rank's samples of the global update
                direction = direction[columns]
            rep.backward(rescale(direction).view_as(rep).to(rep.dtype))
        else:
            accumulate_grad(inputs, direction)
            if collective is not None and local is None:
                collective.mark_synced(inputs)
        self.report_failures(info)
        return info


#: a user's balancer (``balancer._target_=pkg.mod.Name`` or an entry point): one of the two kinds
BALANCERS.accept_plugins(subclass_contract((LossWeighting, GradientAggregator), ("tasks",)))

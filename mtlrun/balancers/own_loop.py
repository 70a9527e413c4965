"""mtlrun's balancers in a training loop of one's own: the keyword form of ``backward``.

The trainer calls ``balancer.backward(losses, ctx)`` with a :class:`~mtlrun.balancers.base.StepContext`
it builds. A plain PyTorch loop calls::

    info = balancer.backward(losses, shared_params=model.shared.parameters())

and this module builds the same StepContext from the keywords, so ``.grad`` is filled exactly as
the trainer fills it:

- ``shared_params``: the parameters every task shares (any iterable; those that require grad are
  used, as the trainer does). Needed by every method that works on task gradients.
- ``task_params``: ``{task: parameters}`` of each task alone (its head). Gradient methods give them
  their plain task gradient (``head_gradients = "task"``) or the weighted one (``"weighted"``), as
  in the trainer. ``None``: each task's parameters are the trainable leaves its loss reaches that are
  not shared (as torchjd infers them); a parameter reached by two tasks and not shared is an error.
- ``representation``: with ``rep_grad=True``, the shared representation the heads read (the
  encoder's output, with its graph: J is taken with respect to it and the update flows back through it).
- ``epoch`` / ``step``: counted by the balancer when not given (``step`` from 0 at each call,
  ``epoch`` the last one given, else 1); ``present``: which tasks have labels in the batch
  (bool tensor in ``balancer.tasks`` order, or ``{task: bool}``).
- closures and batches for the methods that need them (``Balancer.context_needs()`` names them, a
  missing one is a one-line error naming the keyword): ``model``, ``lr``, ``batch``,
  ``extra_batches`` (``batches_per_step - 1`` more batches), ``compute_losses(batch)``,
  ``validation_batch()``, ``functional_losses(params, batch)``.

The first call fixes the balancer's tasks (``losses``' keys, in order) when it was built without
them; any later call with other keys is a one-line error.
"""

from __future__ import annotations

import functools
import inspect
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn

from mtlrun.balancers import deferred
from mtlrun.errors import ConfigError

# ``Balancer``, ``StepContext`` and ``BalanceInfo`` (mtlrun.balancers.base, which installs this module's
# entry points) are named in docstrings only: this module does not import base, so there is no cycle.
Balancer = Any
StepContext = Any
BalanceInfo = Any

#: the keywords of the plain-loop form, in the order of its signature
KEYWORDS = (
    "shared_params",
    "task_params",
    "model",
    "representation",
    "epoch",
    "step",
    "present",
    "lr",
    "batch",
    "extra_batches",
    "compute_losses",
    "validation_batch",
    "functional_losses",
)
#: what ``model`` is when none is given (no method that reads it runs without one)
_NO_MODEL = nn.Module()


def install(cls: type, context: type) -> None:
    """Give a balancer class the two plain-loop entry points: construction without ``tasks`` and
    the keyword form of ``backward`` (each wraps what ``cls`` itself defines); ``context`` is the
    StepContext class."""
    own = cls.__dict__
    cls.__init__ = deferred.deferrable(cls.__init__)  # type: ignore[misc]  # its own, or the inherited one
    if "backward" in own and not getattr(own["backward"], "_mtlrun_keywords", False):
        cls.backward = keyword_backward(own["backward"], context)  # type: ignore[attr-defined]


def keyword_backward(method: Callable[..., BalanceInfo], context: type) -> Callable[..., BalanceInfo]:
    """``method`` (``backward(losses, ctx)``), also callable as ``backward(losses, **keywords)``."""

    @functools.wraps(method)
    def backward(self: Balancer, losses: Mapping[str, Tensor], ctx: StepContext | None = None, **keywords: Any):
        if ctx is not None:
            if keywords:
                raise TypeError(
                    f"{type(self).__name__}.backward takes a StepContext or keywords, not both "
                    f"(got {', '.join(sorted(keywords))})"
                )
            return method(self, losses, ctx)
        return plain_backward(self, method, losses, keywords, context)

    parameters = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("losses", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
        *(inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None) for k in KEYWORDS),
    ]
    backward.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    backward._mtlrun_keywords = True  # type: ignore[attr-defined]
    return backward


def plain_backward(
    balancer: Balancer,
    method: Callable[..., BalanceInfo],
    losses: Mapping[str, Tensor],
    keywords: dict[str, Any],
    context: type,
) -> BalanceInfo:
    """One step of a plain loop: build the balancer if pending, check the tasks, build the context, run."""
    name = type(balancer).__name__
    unknown = sorted(set(keywords) - set(KEYWORDS))
    if unknown:
        raise TypeError(
            f"{name}.backward() got an unexpected keyword argument '{unknown[0]}'; its keywords: {', '.join(KEYWORDS)}"
        )
    if not isinstance(losses, Mapping) or not losses:
        raise ConfigError(f"{name}.backward needs losses as a non-empty {{task: scalar loss}} dict")
    first = next(iter(losses.values()))
    if not isinstance(first, Tensor):
        raise ConfigError(f"{name}.backward needs losses as {{task: scalar loss tensor}}; got {type(first).__name__}")
    deferred.build(balancer, list(losses), first.device)
    check_tasks(balancer, losses)
    ctx = step_context(balancer, losses, keywords, context)
    info = method(balancer, losses, ctx)
    balancer.__dict__["_plain_step"] = ctx.step + 1
    balancer.__dict__["_plain_epoch"] = ctx.epoch
    return info


def check_tasks(balancer: Balancer, losses: Mapping[str, Tensor]) -> None:
    """The losses' keys are the balancer's tasks (fixed at construction or by its first call)."""
    if set(losses) == set(balancer.tasks):
        return
    missing = [t for t in balancer.tasks if t not in losses]
    extra = [t for t in losses if t not in balancer.tasks]
    parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
        [f"unexpected {', '.join(extra)}"] if extra else []
    )
    raise ConfigError(
        f"{type(balancer).__name__} balances the tasks {', '.join(balancer.tasks)} (fixed when it was built); "
        f"these losses have {', '.join(losses)} ({'; '.join(parts)})"
    )


def step_context(
    balancer: Balancer, losses: Mapping[str, Tensor], keywords: dict[str, Any], context: type
) -> StepContext:
    """The StepContext (``context``) the trainer would build for this step, from a plain loop's keywords."""
    name = type(balancer).__name__
    needs = dict(balancer.context_needs())
    if balancer.needs_representation:
        needs.setdefault(
            "representation", "rep_grad=True differentiates the losses with respect to the shared representation"
        )
    for key, why in needs.items():
        if keywords.get(key) is None:
            raise ConfigError(f"{name}.backward needs {key}= ({why})")
    extra_batches = list(keywords.get("extra_batches") or [])
    if len(extra_batches) < balancer.batches_per_step - 1:
        more = balancer.batches_per_step - 1
        raise ConfigError(
            f"{name}.backward needs extra_batches= with {more} more batch{'es' if more > 1 else ''} "
            f"({balancer.batches_per_step} per step, the step's own batch first); got {len(extra_batches)}"
        )
    model = keywords.get("model")
    shared = parameter_list(keywords.get("shared_params"), "shared_params", name)
    if not shared and balancer.uses_task_gradients and not balancer.needs_representation:
        if keywords.get("shared_params") is None:
            raise ConfigError(
                f"{name}.backward needs shared_params= (the parameters every task shares, "
                "e.g. model.encoder.parameters())"
            )
        raise ConfigError(f"{name}.backward: shared_params holds no parameter that requires grad")
    representation = keywords.get("representation") if balancer.needs_representation else None
    if representation is not None and (not isinstance(representation, Tensor) or representation.grad_fn is None):
        raise ConfigError(
            f"{name}.backward needs representation= with its graph to the shared parameters "
            "(the encoder's output the heads read, not a detached copy)"
        )
    task_params = own_parameters(balancer, losses, shared, keywords.get("task_params"), representation, model)
    epoch = keywords.get("epoch")
    step = keywords.get("step")
    ctx = context(
        model=model if model is not None else _NO_MODEL,
        shared_params=shared,
        task_params=task_params,
        epoch=int(epoch) if epoch is not None else int(balancer.__dict__.get("_plain_epoch", 1)),
        step=int(step) if step is not None else int(balancer.__dict__.get("_plain_step", 0)),
        representation=representation,
        representation_input=representation,
        extra_batches=extra_batches,
        compute_losses=keywords.get("compute_losses"),
        lr=float(keywords.get("lr") or 0.0),
        batch=keywords.get("batch"),
        validation_batch=keywords.get("validation_batch"),
        functional_losses=keywords.get("functional_losses"),
    )
    present = keywords.get("present")
    if present is not None:
        ctx.present = present_mask(balancer, present, next(iter(losses.values())).device)
    return ctx


def parameter_list(params: Iterable[Tensor] | Tensor | None, key: str, name: str) -> list[nn.Parameter]:
    """The trainable tensors of ``params`` (an iterable, a generator, or one tensor), in order."""
    if params is None:
        return []
    items = [params] if isinstance(params, Tensor) else list(params)
    for item in items:
        if not isinstance(item, Tensor):
            raise ConfigError(f"{name}.backward: {key} holds a {type(item).__name__}, not a tensor")
    return [cast(nn.Parameter, p) for p in items if p.requires_grad]


def own_parameters(
    balancer: Balancer,
    losses: Mapping[str, Tensor],
    shared: list[nn.Parameter],
    given: Mapping[str, Iterable[Tensor] | Tensor] | None,
    representation: Tensor | None,
    model: nn.Module | None,
) -> dict[str, list[nn.Parameter]]:
    """``{task: its own trainable parameters}``: as given, else found in the losses' graphs."""
    name = type(balancer).__name__
    own: dict[str, list[nn.Parameter]]
    if given is None:
        if not balancer.uses_task_gradients:  # one backward of a weighted sum reaches every parameter
            own = {t: [] for t in balancer.tasks}
        else:
            stop = {representation.grad_fn} if representation is not None else set()
            own = {t: graph_leaves(losses[t], shared, stop) for t in balancer.tasks}
    else:
        if not isinstance(given, Mapping):
            raise ConfigError(f"{name}.backward needs task_params as {{task: parameters}}")
        unknown = [t for t in given if t not in balancer.tasks]
        if unknown:
            raise ConfigError(
                f"{name}.backward: task_params names task '{unknown[0]}', which is not one of its tasks: "
                f"{', '.join(balancer.tasks)}"
            )
        own = {t: parameter_list(given.get(t), f"task_params['{t}']", name) for t in balancer.tasks}
    check_disjoint(name, shared, own, model)
    return own


def graph_leaves(loss: Tensor, shared: list[nn.Parameter], stop: set[Any]) -> list[nn.Parameter]:
    """The trainable leaves ``loss`` reaches in its autograd graph, without ``shared`` and without
    going past the nodes in ``stop`` (the representation)."""
    root = loss.grad_fn
    if root is None:
        return []
    shared_ids = {id(p) for p in shared}
    leaves: list[nn.Parameter] = []
    seen = set(stop) | {root}
    queue = deque([root])
    while queue:
        node = queue.popleft()
        variable = getattr(node, "variable", None)  # an AccumulateGrad node: a leaf
        if variable is not None:
            if id(variable) not in shared_ids and variable.requires_grad:
                leaves.append(variable)
            continue
        for child, _ in node.next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                queue.append(child)
    return leaves


def check_disjoint(
    name: str, shared: list[nn.Parameter], own: dict[str, list[nn.Parameter]], model: nn.Module | None
) -> None:
    """No parameter is both shared and a task's own, nor the own parameter of two tasks."""
    names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}

    def describe(p: Tensor) -> str:
        return f"parameter {names[id(p)]}" if id(p) in names else f"a parameter of shape {tuple(p.shape)}"

    owner = {id(p): "shared_params" for p in shared}
    for task, params in own.items():
        for p in params:
            previous = owner.get(id(p))
            if previous is not None and previous != task:
                other = "shared_params" if previous == "shared_params" else f"the parameters of task {previous}"
                raise ConfigError(
                    f"{name}.backward: {describe(p)} is in {other} and in those of task {task}; a parameter "
                    "used by several tasks goes in shared_params, one used by a single task in its task_params"
                )
            owner[id(p)] = task


def present_mask(
    balancer: Balancer, present: Mapping[str, bool] | Tensor | Iterable[bool], device: torch.device
) -> Tensor:
    """``present`` as the bool (T,) tensor of the step context, in ``balancer.tasks`` order."""
    if isinstance(present, Mapping):
        unknown = [t for t in present if t not in balancer.tasks]
        if unknown:
            raise ConfigError(
                f"{type(balancer).__name__}.backward: present names task '{unknown[0]}', which is not one of its "
                f"tasks: {', '.join(balancer.tasks)}"
            )
        return torch.tensor([bool(present.get(t, True)) for t in balancer.tasks], device=device)
    mask = torch.as_tensor(present, dtype=torch.bool, device=device).flatten()
    if mask.numel() != balancer.num_tasks:
        raise ConfigError(
            f"{type(balancer).__name__}.backward: present has {mask.numel()} entries; it needs one per task "
            f"({', '.join(balancer.tasks)})"
        )
    return mask

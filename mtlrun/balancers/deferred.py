"""Balancers built without their task names: ``PCGrad()`` instead of ``PCGrad(tasks=[...])``.

The trainer builds a balancer with the run's task names. In a training loop of one's own the names
are those of the first ``losses`` dict given to ``backward`` (in its order); until that call the
balancer is *pending*: it records its options and is built, in place, when the names are known
(:func:`build`). The constructor stays the one source of every default and every check: a wrong
option name, or a value wrong whatever the tasks (``w_lr=-1``), fails at once; a value that must
agree with the tasks (``min_losses``' length) is checked at the build.

So that a plain loop can treat a pending balancer as the built one:

- options and flags a user may read first (``batches_per_step``, ``needs_representation``,
  ``rep_grad``, ...) come from a *probe*, the same class built on placeholder task names; a
  probe that fails (an option that names the run's tasks) only means no early answers;
- learnable weights (``uw``'s log-variances, IMTL's loss scales) exist from the start as
  ``nn.UninitializedParameter`` s, so ``optimizer = Adam([*model.parameters(), *b.parameters()])``
  works before the first step; the build materialises the same objects, which the optimizer holds;
- ``.to(device)``, ``.double()`` and the like are recorded and replayed on the built balancer
  (without any, it is built on the device of the first losses);
- ``load_state_dict`` keeps the state and loads it at the build (a resumed loop), and
  ``state_dict`` gives that state back (empty before anything was loaded).
"""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import _IncompatibleKeys

from mtlrun.errors import ConfigError

#: the task names a probe is built on (their count is the smallest a multi-task method takes), and
#: those of a second probe that tells an error of the options alone from one tied to the tasks
PROBE_TASKS = ("task_1", "task_2")
SECOND_PROBE_TASKS = tuple(f"task_{i}" for i in range(1, 10))
_PLAIN = (bool, int, float, str)


@dataclass
class Pending:
    """What a balancer built without task names keeps until its first ``backward``."""

    #: the constructor that would have run, and its arguments (the instance and ``tasks`` left out)
    init: Callable[..., None]
    signature: inspect.Signature
    arguments: dict[str, Any]
    #: ``Module._apply`` functions (``.to``, ``.double``, ...) to replay on the built balancer
    conversions: list[Callable[..., Any]] = field(default_factory=list)
    #: a state given to ``load_state_dict`` before the build
    state: dict[str, Any] | None = None
    #: attribute names copied from the probe (removed before the build sets them for real)
    copied: list[str] = field(default_factory=list)

    def call(self, instance: nn.Module, tasks: Sequence[str]) -> None:
        """Run the constructor on ``instance`` with ``tasks`` and the recorded options."""
        names = list(self.signature.parameters)
        values = {**self.arguments, names[0]: instance, "tasks": list(tasks)}
        bound = inspect.BoundArguments(self.signature, OrderedDict((n, values[n]) for n in names if n in values))
        self.init(*bound.args, **bound.kwargs)


def pending(module: nn.Module) -> Pending | None:
    """The pending record of a balancer built without task names (None once it is built)."""
    return module.__dict__.get("_pending")


def deferrable(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` (a balancer's ``__init__``), which also accepts a call without ``tasks`` (or ``tasks=None``);
    ``init`` itself where it does not take ``tasks`` or already accepts that."""
    signature = inspect.signature(init)
    if "tasks" not in signature.parameters or getattr(init, "_mtlrun_deferrable", False):
        return init

    @functools.wraps(init)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        try:
            bound = signature.bind_partial(self, *args, **kwargs)
        except TypeError as ex:
            raise TypeError(f"{type(self).__name__}(): {ex}") from None
        if bound.arguments.get("tasks") is not None:
            init(self, *args, **kwargs)
            return
        defer(self, init, signature, bound)

    __init__._mtlrun_deferrable = True  # type: ignore[attr-defined]
    return __init__


def defer(instance: nn.Module, init: Callable[..., None], signature: inspect.Signature, bound: Any) -> None:
    """Make ``instance`` a pending balancer: options recorded, probe answers and placeholders in place."""
    nn.Module.__init__(instance)
    first = next(iter(signature.parameters))
    arguments = {k: v for k, v in bound.arguments.items() if k not in (first, "tasks")}
    record = Pending(init, signature, arguments)
    instance.tasks = []  # type: ignore[assignment]
    probe = _probe(type(instance), record)
    if probe is not None:
        for name, value in vars(probe).items():
            if not name.startswith("_") and name not in ("tasks", "training") and isinstance(value, _PLAIN):
                instance.__dict__[name] = value
                record.copied.append(name)
        for name, parameter in probe._parameters.items():
            if parameter is not None:
                placeholder = nn.UninitializedParameter(requires_grad=parameter.requires_grad)
                instance.register_parameter(name, placeholder)  # type: ignore[arg-type]
    instance.__dict__["_pending"] = record


def _probe(cls: type[nn.Module], record: Pending) -> nn.Module | None:
    """The class built on placeholder task names (global RNG untouched), or None where that fails.

    A failure may come from an option tied to the run's tasks (``min_losses`` of another length,
    ``weights`` that name tasks), which the real build checks. It is raised now when a second probe,
    on other names and another number of tasks, fails with the same message: it then comes from the
    options alone (``w_lr=-1``).
    """
    try:
        return _built(cls, record, PROBE_TASKS)
    except Exception as first:
        try:
            _built(cls, record, SECOND_PROBE_TASKS)
        except Exception as second:
            if type(second) is type(first) and str(second) == str(first):
                raise first from None
        return None


def _built(cls: type[nn.Module], record: Pending, tasks: Sequence[str]) -> nn.Module:
    probe = cls.__new__(cls)
    with torch.random.fork_rng(devices=[]):
        record.call(probe, tasks)
    return probe


def build(module: nn.Module, tasks: Sequence[str], device: torch.device) -> None:
    """Build a pending balancer in place for ``tasks``; a no-op for a built one.

    Raises ``ConfigError`` (one line) if the built balancer has learnable weights the probe did
    not announce: an optimizer built before this call cannot hold them.
    """
    record = pending(module)
    if record is None:
        return
    del module.__dict__["_pending"]
    placeholders = dict(module._parameters)
    for name in record.copied:
        module.__dict__.pop(name, None)
    record.call(module, tasks)
    if record.conversions:
        for fn in record.conversions:
            module._apply(fn)
    else:
        module.to(device)
    for name, placeholder in placeholders.items():
        built = module._parameters.get(name)
        if placeholder is None or built is None:
            continue
        assert isinstance(placeholder, nn.UninitializedParameter)
        placeholder.materialize(built.shape, device=built.device, dtype=built.dtype)
        with torch.no_grad():
            placeholder.copy_(built)
        placeholder.requires_grad_(built.requires_grad)
        module._parameters[name] = placeholder
    known = {id(p) for p in placeholders.values()}
    late = [n for n, p in module.named_parameters() if p.requires_grad and id(p) not in known]
    if late:
        cls = type(module).__name__
        raise ConfigError(
            f"{cls} learns weights of its own ({', '.join(late)}) that exist only once its tasks are known, "
            f"so an optimizer built before its first backward cannot hold them: build it as {cls}(tasks=[...]) "
            "and give its parameters() to the optimizer"
        )
    if record.state is not None:
        module.load_state_dict(record.state)


def state_dict(record: Pending, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> Any:
    """A pending balancer's state: the state loaded into it, else nothing (it has not started)."""
    out = OrderedDict() if destination is None else destination
    for key, value in (record.state or {}).items():
        out[prefix + key] = value
    return out


def load_state_dict(record: Pending, state: Mapping[str, Any]) -> _IncompatibleKeys:
    """Keep ``state`` for the build (the keys are checked then, strictly)."""
    record.state = dict(state)
    return _IncompatibleKeys([], [])

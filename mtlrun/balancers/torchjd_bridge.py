"""Run any aggregator of the torchjd library (optional extra ``pip install mtlrun[torchjd]``)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.errors import ConfigError, choices_error

INSTALL_HINT = "pip install 'mtlrun[torchjd]'"


def torchjd_aggregation() -> Any:
    try:
        return importlib.import_module("torchjd.aggregation")
    except ImportError as ex:
        raise ConfigError(
            f"balancer=torchjd needs the optional dependency torchjd ({ex}); install it with: {INSTALL_HINT}"
        ) from None


def aggregator_names() -> list[str]:
    """The concrete aggregator classes torchjd exports (e.g. UPGrad, MGDA, CAGrad, NashMTL)."""
    module = torchjd_aggregation()
    return sorted(
        name
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, module.Aggregator)
        and not inspect.isabstract(obj)
        and name not in ("Aggregator", "WeightedAggregator", "GramianWeightedAggregator")
    )


def _as_argument(value: Any) -> Any:
    """Lists of numbers become tensors (torchjd's pref_vector, leak); everything else is passed as is."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return torch.tensor([float(v) for v in value])
    return value


def build_aggregator(aggregator: str, options: Mapping[str, Any] | None, num_tasks: int) -> Any:
    """The torchjd aggregator ``aggregator`` built with ``options``; bad names and options are ConfigErrors."""
    module = torchjd_aggregation()
    names = aggregator_names()
    if aggregator not in names:
        raise choices_error("balancer.aggregator", aggregator, names)
    cls = getattr(module, aggregator)
    accepted = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
    kwargs = {str(k): _as_argument(v) for k, v in dict(options or {}).items()}
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown key 'balancer.options.{unknown[0]}' for torchjd {aggregator}; "
            f"valid keys: {', '.join(accepted) or '(none)'}"
        )
    if "n_tasks" in accepted and "n_tasks" not in kwargs:
        kwargs["n_tasks"] = num_tasks
    try:
        return cls(**kwargs)
    except ImportError as ex:
        raise ConfigError(
            f"torchjd {aggregator} needs more dependencies ({ex}); install them with: {INSTALL_HINT}"
        ) from None
    except (TypeError, ValueError) as ex:
        message = str(ex).splitlines()[0] if str(ex) else type(ex).__name__
        raise ConfigError(f"balancer.options for torchjd {aggregator} are not valid: {message}") from None


class TorchJDWeighting(GramianAggregator):
    """A torchjd aggregator that weights the rows of the Jacobian (UPGrad, MGDA, NashMTL, ...)."""

    output = "weights"

    def __init__(
        self,
        tasks: Sequence[str],
        aggregator: Any,
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
        self.aggregator = aggregator

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        return self.aggregator.weighting(jacobian)


class TorchJDDirection(GramianAggregator):
    """A torchjd aggregator that returns the update itself (GradDrop, ConFIG, TrimmedMean, ...)."""

    output = "direction"

    def __init__(
        self, tasks: Sequence[str], aggregator: Any, rep_grad: bool = False, jacobian_mode: JacobianMode = "auto"
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, jacobian_mode=jacobian_mode)
        self.aggregator = aggregator

    def direction(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        return self.aggregator(jacobian)


@BALANCERS.register("torchjd")
def torchjd(
    tasks: Sequence[str],
    aggregator: str = "UPGrad",
    options: Mapping[str, Any] | None = None,
    rep_grad: bool = False,
    update_every: int = 1,
    jacobian_mode: JacobianMode = "auto",
) -> GramianAggregator:
    """Any torchjd aggregator (``balancer.aggregator=NAME``, its keyword arguments in ``balancer.options``).

    Aggregators that weight the rows of the Jacobian (UPGrad, MGDA, NashMTL, ...) return those weights,
    so ``update_every`` applies to them; the others (GradDrop, ConFIG, TrimmedMean, ...) return the
    direction. ``n_tasks`` is filled in when the aggregator takes it (such an aggregator cannot work on
    a batch where some tasks have no labels). State that torchjd keeps outside module buffers (e.g.
    NashMTL's previous solution) is not checkpointed.
    """
    built = build_aggregator(aggregator, options, len(tasks))
    if isinstance(built, torchjd_aggregation().WeightedAggregator):
        return TorchJDWeighting(tasks, built, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
    if update_every > 1:
        raise ConfigError(
            f"balancer.update_every={update_every} needs an aggregator that returns weights; {aggregator} does not"
        )
    return TorchJDDirection(tasks, built, rep_grad=rep_grad, jacobian_mode=jacobian_mode)

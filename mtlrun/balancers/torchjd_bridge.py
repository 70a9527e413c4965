"""Run any aggregator of the torchjd library (optional extra ``pip install mtlrun[torchjd]``)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS
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


@BALANCERS.register("torchjd")
class TorchJDAggregator(GramianAggregator):
    """Any torchjd aggregator (``balancer.aggregator=NAME``, its keyword arguments in ``balancer.options``).

    Aggregators that weight the rows of the Jacobian (UPGrad, MGDA, NashMTL, ...) return those weights,
    so ``update_every`` applies to them; the others (GradDrop, ConFIG, TrimmedMean, ...) return the
    direction. ``n_tasks`` is filled in when the aggregator takes it. State that torchjd keeps outside
    module buffers (e.g. NashMTL's previous solution) is not checkpointed.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        aggregator: str = "UPGrad",
        options: Mapping[str, Any] | None = None,
        rep_grad: bool = False,
        update_every: int = 1,
        jacobian_mode: JacobianMode = "auto",
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, update_every=update_every, jacobian_mode=jacobian_mode)
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
            kwargs["n_tasks"] = self.num_tasks
        try:
            self.aggregator = cls(**kwargs)
        except ImportError as ex:
            raise ConfigError(
                f"torchjd {aggregator} needs more dependencies ({ex}); install them with: {INSTALL_HINT}"
            ) from None
        except (TypeError, ValueError) as ex:
            message = str(ex).splitlines()[0] if str(ex) else type(ex).__name__
            raise ConfigError(f"balancer.options for torchjd {aggregator} are not valid: {message}") from None
        self.weighted = isinstance(self.aggregator, module.WeightedAggregator)
        if update_every > 1 and not self.weighted:
            raise ConfigError(
                f"balancer.update_every={update_every} needs an aggregator that returns weights; {aggregator} does not"
            )

    def aggregate(self, jacobian: Tensor) -> Tensor:
        if self.weighted:
            return self.aggregator.weighting(jacobian)
        return self.aggregator(jacobian)

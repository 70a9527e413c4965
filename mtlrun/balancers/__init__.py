"""Balancers: every module here registers its methods in ``BALANCERS`` on import."""

import importlib
import pkgutil

from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, GradientAggregator, LossWeighting, StepContext

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "jacobian"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["BALANCERS", "BalanceInfo", "Balancer", "GradientAggregator", "LossWeighting", "StepContext"]

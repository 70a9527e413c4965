"""Balancers: every module here registers its methods in ``BALANCERS`` on import.

Each method is also importable by its class name, for a training loop of one's own::

    from mtlrun.balancers import PCGrad
    balancer = PCGrad()  # the tasks are those of the first losses given to backward
    info = balancer.backward(losses, shared_params=model.encoder.parameters())

(:mod:`mtlrun.balancers.own_loop` describes the keywords). ``torchjd`` is a function, not a class:
it returns a :class:`TorchJDWeighting` or :class:`TorchJDDirection`, whichever the aggregator is.
"""

import importlib
import pkgutil

from mtlrun.balancers.aligned_mtl import AlignedMTL
from mtlrun.balancers.auto_lambda import AutoLambda
from mtlrun.balancers.base import BALANCERS, BalanceInfo, Balancer, GradientAggregator, LossWeighting, StepContext
from mtlrun.balancers.cagrad import CAGrad
from mtlrun.balancers.conflict_free import ConFIG
from mtlrun.balancers.cr_mogm import CRMOGM
from mtlrun.balancers.db_mtl import DualBalancing
from mtlrun.balancers.dual_cone import DualProj, UPGrad
from mtlrun.balancers.dwa import DynamicWeightAverage
from mtlrun.balancers.excess_mtl import ExcessMTL
from mtlrun.balancers.fairgrad import FairGrad
from mtlrun.balancers.famo import FAMO
from mtlrun.balancers.forum import FORUM
from mtlrun.balancers.gls import GeometricLossStrategy
from mtlrun.balancers.go4align import GO4Align
from mtlrun.balancers.graddrop import GradDrop
from mtlrun.balancers.gradnorm import GradNorm
from mtlrun.balancers.gradvac import GradVac
from mtlrun.balancers.imtl import IMTL
from mtlrun.balancers.ldc_mtl import LDCMTL
from mtlrun.balancers.mgda import MGDA
from mtlrun.balancers.moco import MoCo
from mtlrun.balancers.modo import MoDo
from mtlrun.balancers.moml import MOML
from mtlrun.balancers.nash_mtl import NashMTL
from mtlrun.balancers.pbi import PenaltyBoundaryIntersection
from mtlrun.balancers.pcgrad import PCGrad
from mtlrun.balancers.rlw import RandomLossWeighting
from mtlrun.balancers.sdmgrad import SDMGrad
from mtlrun.balancers.stch import SmoothTchebycheff
from mtlrun.balancers.torchjd_bridge import TorchJDDirection, TorchJDWeighting, torchjd
from mtlrun.balancers.uncertainty import UncertaintyWeighting
from mtlrun.balancers.weighting import EqualWeighting, FixedWeighting

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "jacobian"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BALANCERS",
    "AlignedMTL",
    "AutoLambda",
    "BalanceInfo",
    "Balancer",
    "CAGrad",
    "CRMOGM",
    "ConFIG",
    "DualBalancing",
    "DualProj",
    "DynamicWeightAverage",
    "EqualWeighting",
    "ExcessMTL",
    "FAMO",
    "FORUM",
    "FairGrad",
    "FixedWeighting",
    "GO4Align",
    "GeometricLossStrategy",
    "GradDrop",
    "GradNorm",
    "GradVac",
    "GradientAggregator",
    "IMTL",
    "LDCMTL",
    "LossWeighting",
    "MGDA",
    "MOML",
    "MoCo",
    "MoDo",
    "NashMTL",
    "PCGrad",
    "PenaltyBoundaryIntersection",
    "RandomLossWeighting",
    "SDMGrad",
    "SmoothTchebycheff",
    "StepContext",
    "TorchJDDirection",
    "TorchJDWeighting",
    "UPGrad",
    "UncertaintyWeighting",
    "torchjd",
]

"""Penalty-based boundary intersection (``pbi``): the MOEA/D scalarisation of the task losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, LossWeighting, StepContext, present_rows
from mtlrun.errors import ConfigError

#: under the square root of d2, so its gradient stays finite on the preference ray (as torchjd does)
EPS = 1e-12


@BALANCERS.register("pbi")
class PenaltyBoundaryIntersection(LossWeighting):
    """PBI scalarisation (Zhang & Li, "MOEA/D: A Multiobjective Evolutionary Algorithm Based on
    Decomposition", IEEE TEC 2007, Sec. II-C; torchjd's ``scalarization.PBI``).

    With ``f = L - z*`` (the losses minus a reference point) and the unit preference ``u = p / ||p||``:

        d1 = f^T u,    d2 = ||f - d1 u||,    minimise  d1 + theta d2,

    which moves along the preference ray and penalises the distance to it. Its gradient is
    ``sum_t w_t grad L_t`` with

        w = u + theta (f - d1 u) / d2,

    which the code back-propagates as ``sum_t w_t L_t`` (``w`` constant, the same gradient); ``w`` is
    the reported weight, and it can be negative: a task ahead of the ray is pushed back towards it.
    ``theta=5`` is the paper's. ``preference`` (one value >= 0 per task, in task order; null = equal) and
    ``reference`` (z*, per task; null = zeros, right for non-negative losses) are fixed.

    A task without labels in a batch (``ctx.present``) gets weight 0: the decomposition runs over the
    present tasks with their part of ``p`` renormalised. No state.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        theta: float = 5.0,
        preference: list[float] | None = None,
        reference: list[float] | None = None,
    ) -> None:
        super().__init__(tasks)
        if not theta >= 0:
            raise ConfigError(f"balancer.theta={theta} must be >= 0")
        for key, values in (("preference", preference), ("reference", reference)):
            if values is not None and len(values) != self.num_tasks:
                raise ConfigError(
                    f"balancer.{key} has {len(values)} values but the run has {self.num_tasks} tasks "
                    f"({', '.join(self.tasks)})"
                )
        if preference is not None and (any(v < 0 for v in preference) or not sum(preference) > 0):
            raise ConfigError(f"balancer.preference={list(preference)} must be >= 0 with a positive sum")
        self.theta = theta
        self.register_buffer(
            "preference",
            torch.tensor([float(v) for v in (preference or [1.0] * self.num_tasks)], dtype=torch.float64),
            persistent=False,
        )
        self.register_buffer(
            "reference",
            torch.tensor([float(v) for v in (reference or [0.0] * self.num_tasks)], dtype=torch.float64),
            persistent=False,
        )

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        rows = present_rows(ctx.present)
        f = losses.detach().double() - self.reference.double()
        p = self.preference.double()
        weights = torch.zeros_like(f)
        if rows is not None:
            f, p = f[rows], p[rows]
            if len(rows) == 0 or not bool(p.sum() > 0):
                return weights.to(losses)
        u = p / p.norm()
        d1 = f @ u
        perpendicular = f - d1 * u
        d2 = torch.sqrt(perpendicular @ perpendicular + EPS)
        w = u + self.theta * perpendicular / d2
        if rows is None:
            return w.to(losses)
        weights[rows] = w
        return weights.to(losses)

"""Random loss weighting (``rlw``): fresh random task weights at every step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, LossWeighting, StepContext
from mtlrun.registry import positive


@BALANCERS.register("rlw")
class RandomLossWeighting(LossWeighting):
    """Random loss weighting (Lin, Ye, Zhang & Tsang, TMLR 2022).

    At every step the weights are drawn anew and sum to 1, as in the paper (not to T):

    - ``distribution=normal``: ``w = softmax(lambda)`` with ``lambda ~ N(0, I)`` (the paper's default);
    - ``distribution=dirichlet``: ``w ~ Dir(concentration * 1)`` (already on the simplex).

    Samples come from torch's global generator on the losses' device, which the trainer seeds, so
    a run is reproducible from its seed. The method keeps no state.
    """

    def __init__(
        self, tasks: Sequence[str], distribution: Literal["normal", "dirichlet"] = "normal", concentration: float = 1.0
    ) -> None:
        super().__init__(tasks)
        positive("balancer", concentration=concentration)
        self.distribution = distribution
        self.concentration = concentration

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        if self.distribution == "dirichlet":
            alpha = torch.full_like(losses, self.concentration)
            return torch.distributions.Dirichlet(alpha).sample()
        return torch.softmax(torch.randn_like(losses), dim=0)

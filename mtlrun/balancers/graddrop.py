"""GradDrop: gradient sign dropout (Chen et al., NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, StepContext
from mtlrun.balancers.common import GramianAggregator
from mtlrun.balancers.jacobian import JacobianMode
from mtlrun.registry import in_range


def graddrop_direction(jacobian: Tensor, leak: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Algorithm 1 of the paper on each coordinate (column) of J (T x P).

    Sign purity ``P = 1/2 (1 + sum_t g_t / sum_t |g_t|)``; with ``U ~ Uniform(0, 1)`` per coordinate,
    task t keeps its gradient where ``P > U`` and ``g_t > 0`` or ``P < U`` and ``g_t < 0``; a leak l
    lets ``l g_t`` through regardless. Where every task agrees in sign, P is 0 or 1 and nothing drops.
    """
    total = jacobian.sum(dim=0)
    magnitude = jacobian.abs().sum(dim=0)
    purity = 0.5 * (1.0 + torch.where(magnitude > 0, total / magnitude.clamp_min(torch.finfo(jacobian.dtype).tiny), 0))
    uniform = torch.rand(purity.shape, generator=generator, device=jacobian.device, dtype=jacobian.dtype)
    keep = ((purity > uniform) & (jacobian > 0)) | ((purity < uniform) & (jacobian < 0))
    mask = leak + (1.0 - leak) * keep.to(jacobian.dtype)
    return (mask * jacobian).sum(dim=0)


@BALANCERS.register("graddrop")
class GradDrop(GramianAggregator):
    """Gradient sign dropout (Chen et al., NeurIPS 2020).

    The paper inserts the GradDrop layer at the shared representation: use ``rep_grad=true`` for
    that placement (coordinates are then the representation's elements); by default it acts on the
    shared parameters' coordinates. Masks are drawn from torch's global RNG, so a seed reproduces a run.
    The update is a per-coordinate mask of the gradients, not a combination of them, so
    ``update_every`` does not apply.
    """

    output = "direction"

    def __init__(
        self, tasks: Sequence[str], leak: float = 0.0, rep_grad: bool = False, jacobian_mode: JacobianMode = "auto"
    ) -> None:
        super().__init__(tasks, rep_grad=rep_grad, jacobian_mode=jacobian_mode)
        in_range("balancer", "leak", leak, 0.0, 1.0)
        self.leak = leak

    def direction(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        return graddrop_direction(jacobian, self.leak)

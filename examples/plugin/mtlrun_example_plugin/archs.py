"""Task-specific feature modulation on a shared encoder."""

from __future__ import annotations

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models import EncoderSpec, MultiTaskModel
from mtlrun.models.base import build_heads


class _SqueezeExcite(nn.Module):
    """One task's gate: ``h * sigmoid(W2 relu(W1 s(h)))``, with ``s`` the identity on vectors and
    the spatial mean on feature maps (a squeeze-and-excitation unit, Hu et al., CVPR 2018)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, h: Tensor) -> Tensor:
        squeezed = h if h.dim() == 2 else h.mean(dim=tuple(range(2, h.dim())))
        scale = self.gate(squeezed)
        return h * scale.view(*scale.shape, *([1] * (h.dim() - 2)))


class TaskGates(MultiTaskModel):
    """Shared encoder, then one squeeze-and-excitation gate per task before its head.

    The task-specific modulation of "Attentive Single-Tasking of Multiple Tasks" (Maninis et al.,
    CVPR 2019), applied once, to the encoder's output: every task reads the same features, each
    re-weights their channels its own way, ``y_t = head_t(h * g_t(h))``. The gates belong to their
    tasks, so gradient balancers see only the encoder as shared; ``h`` is the shared
    representation (``rep_grad`` works).
    """

    has_representation = True

    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec], reduction: int = 4) -> None:
        super().__init__(encoder, tasks)
        if reduction < 1:
            from mtlrun.errors import ConfigError

            raise ConfigError(f"arch.reduction={reduction} must be >= 1")
        self.encoder = encoder.build()
        channels = self.encoder.out_dim
        self.gates = nn.ModuleDict({t.name: _SqueezeExcite(channels, reduction) for t in tasks})
        self.heads = build_heads(tasks, self.encoder)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, representation: Tensor) -> dict[str, Tensor]:
        return {t: head(self.gates[t](representation)) for t, head in self.heads.items()}

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.gates[task], self.heads[task]]

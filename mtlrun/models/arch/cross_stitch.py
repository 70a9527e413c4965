"""Cross-stitch networks (Misra, Shrivastava, Gupta, Hebert, CVPR 2016)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.encoders import EncoderSpec
from mtlrun.registry import in_range


class StitchRow(nn.Module):
    """Row i of a cross-stitch unit: the weights ``alpha_i1 .. alpha_iT`` of task i's mixed features.

    On feature maps each channel has its own weights (``alpha`` is (T, C)), the channel-wise unit
    Misra et al. (2016, section 3) mention and that sluice networks use; on vectors one scalar per
    column.
    """

    def __init__(self, num_tasks: int, index: int, alpha_self: float, channels: int = 0) -> None:
        super().__init__()
        other = (1.0 - alpha_self) / (num_tasks - 1) if num_tasks > 1 else 0.0
        row = torch.full((num_tasks,), other)
        row[index] = alpha_self if num_tasks > 1 else 1.0
        self.alpha = nn.Parameter(row[:, None].repeat(1, channels) if channels else row)

    def forward(self, columns: Tensor) -> Tensor:
        """``sum_j alpha_ij x_j`` for the stacked column outputs (T, N, ...), per channel on maps (T, N, C, H, W)."""
        if self.alpha.dim() == 2:
            return (self.alpha[:, None, :, None, None] * columns).sum(dim=0)
        return torch.tensordot(self.alpha, columns, dims=1)


@ARCHS.register("cross_stitch")
class CrossStitch(MultiTaskModel):
    """One encoder column per task, mixed after every stage by a learned cross-stitch unit.

    After stage s, column i continues with ``x~_i = sum_j alpha^s_ij x_j`` (Misra et al., CVPR 2016,
    eq. 1, generalised from two to T tasks), and head i reads column i's last mixed output. The
    units start identity-dominant: ``alpha_ii = alpha_self`` and the rest of each row spread evenly
    (the paper's best initialisation for two tasks is (0.9, 0.1)). Every column feeds every task
    through the units, so the columns and all but the last unit are shared; row i of the last unit
    and head i only affect task i. The paper also trains alpha with a larger learning rate; here it
    uses the run's optimiser settings. With ``per_channel`` (default) the units on feature maps
    weight each channel separately.
    """

    def __init__(
        self, encoder: EncoderSpec, tasks: list[TaskSpec], alpha_self: float = 0.9, per_channel: bool = True
    ) -> None:
        super().__init__(encoder, tasks)
        in_range("arch", "alpha_self", alpha_self, 0.0, 1.0)
        T = len(self.task_names)
        self.columns = nn.ModuleDict({t: encoder.build() for t in self.task_names})
        first = self.columns[self.task_names[0]]
        channels = [shape[0] if len(shape) == 3 and per_channel else 0 for shape in first.stage_shapes]
        self.units = nn.ModuleList(
            nn.ModuleDict({t: StitchRow(T, i, alpha_self, c) for i, t in enumerate(self.task_names)}) for c in channels
        )
        self.heads = build_heads(tasks, first)

    def features(self, x: Tensor) -> dict[str, Tensor]:
        """Each column's last mixed output."""
        mixed = {t: x for t in self.task_names}
        for s, unit in enumerate(self.units):
            columns = torch.stack([self.columns[t].stages[s](mixed[t]) for t in self.task_names])
            mixed = {t: unit[t](columns) for t in self.task_names}
        return mixed

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.features(x)
        return {t: self.heads[t](features[t]) for t in self.task_names}

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.units[-1][task], self.heads[task]]

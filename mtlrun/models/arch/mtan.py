"""Multi-task attention network (Liu, Johns, Davison, CVPR 2019)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.encoders import EncoderSpec


class AttentionModule(nn.Module):
    """One task's soft attention at one stage: a mask in (0, 1) of the stage's output shape.

    On feature maps (C, H, W) it is MTAN's ``[conv1x1, BN, ReLU, conv1x1, BN, sigmoid]``; on
    feature vectors (D,) the same with linear layers (and no BN).
    """

    def __init__(self, shape: tuple[int, ...], in_channels: int) -> None:
        super().__init__()
        out = shape[0]
        if len(shape) == 3:
            self.net = nn.Sequential(
                nn.Conv2d(in_channels, out, 1),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.Conv2d(out, out, 1),
                nn.BatchNorm2d(out),
                nn.Sigmoid(),
            )
        else:
            self.net = nn.Sequential(nn.Linear(in_channels, out), nn.ReLU(), nn.Linear(out, out), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@ARCHS.register("mtan")
class MTAN(MultiTaskModel):
    """A shared backbone and per-task soft attention modules at every stage (Liu et al., CVPR 2019, eq. 1).

    With ``f_s`` the shared output of stage s, task t's attended features are
    ``a_t^s = m_t^s ⊙ f_s`` with the mask ``m_t^s = sigmoid(g_t^s([f_s, p_s(a_t^{s-1})]))`` (``g_t^0``
    sees ``f_0`` alone). ``p_s`` is a shared, separately initialised copy of stage s that brings the
    previous attended features to stage s's shape (MTAN's shared 3x3 conv block between attention
    modules). Head t reads ``a_t`` of the last stage. Task t owns its attention modules and head;
    the backbone and the ``p_s`` are shared. Masks are task-specific, so there is no single shared
    representation.
    """

    supports_multi_input = True

    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec]) -> None:
        super().__init__(encoder, tasks)
        self.backbone = encoder.build()
        self.carry = nn.ModuleList(encoder.build().stages[1:])
        shapes = self.backbone.stage_shapes
        self.attention = nn.ModuleDict(
            {
                t: nn.ModuleList(
                    AttentionModule(shape, shape[0] if s == 0 else 2 * shape[0]) for s, shape in enumerate(shapes)
                )
                for t in self.task_names
            }
        )
        self.heads = build_heads(tasks, self.backbone)

    def _attend(self, x: Tensor, tasks: list[str] | None = None) -> tuple[dict[str, Tensor], dict[str, list[Tensor]]]:
        tasks = self.task_names if tasks is None else tasks
        attended: dict[str, Tensor] = {}
        masks: dict[str, list[Tensor]] = {t: [] for t in tasks}
        features = x
        for s, stage in enumerate(self.backbone.stages):
            features = stage(features)
            for t in tasks:
                # each task runs through p_s on its own, so batch statistics never mix tasks
                inputs = features if s == 0 else torch.cat([features, self.carry[s - 1](attended[t])], dim=1)
                mask = self.attention[t][s](inputs)
                masks[t].append(mask)
                attended[t] = mask * features
        return attended, masks

    def attention_masks(self, x: Tensor) -> dict[str, list[Tensor]]:
        """Each task's masks, one per stage."""
        return self._attend(x)[1]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        attended, _ = self._attend(x)
        return {t: self.heads[t](attended[t]) for t in self.task_names}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        return self.heads[task](self._attend(x, [task])[0][task])

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.attention[task], self.heads[task]]

"""Adaptive information transfer multi-task (Xi et al., KDD 2021)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.errors import ConfigError
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.embedded import SparseInputs
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.funnel import ordered_tasks


class AIT(nn.Module):
    """The adaptive information transfer module (Xi et al., KDD 2021, eq. 2-4).

    Attention over two vectors, the information ``p`` transferred from the previous task and the
    current task's tower output ``q``: ``w_u = softmax_u(<h1(u), h2(u)> / sqrt(d))`` for ``u`` in
    ``{p, q}``, and ``z = sum_u w_u h3(u)``, with ``h1, h2, h3`` linear maps (query, key, value).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.scale = 1.0 / math.sqrt(dim)

    def weights(self, p: Tensor, q: Tensor) -> Tensor:
        """(N, 2): the attention on ``p`` and on ``q``."""
        u = torch.stack([p, q], dim=1)  # (N, 2, d)
        return torch.softmax((self.query(u) * self.key(u)).sum(-1) * self.scale, dim=1)

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        u = torch.stack([p, q], dim=1)
        return (self.weights(p, q).unsqueeze(-1) * self.value(u)).sum(1)


@ARCHS.register("aitm")
class AITM(MultiTaskModel):
    """Towers for sequential tasks that pass information forward (Xi et al., KDD 2021, Section 3).

    Tasks ``t = 1..T`` of ``tasks_order`` (impression -> click -> conversion ...) each have a tower
    (a fresh copy of the encoder on the shared field embeddings) with output ``q_t``. Task 1 reads
    ``z_1 = q_1``; task t > 1 reads ``z_t = AIT(p_{t-1}, q_t)`` with ``p_{t-1} = g_{t-1}(z_{t-1})``,
    ``g`` one ReLU layer (eq. 1). Each head maps ``z_t`` to task t's logit. The behavioural
    expectation calibrator (eq. 5-6) penalises a later step predicted likelier than the one before,
    ``L_lc = calibration * mean_x sum_{t>=2} max(yhat_t - yhat_{t-1}, 0)``, returned by
    :meth:`extra_losses` (the paper's alpha = 0.6 is the default; it sums over samples, the mean
    here keeps the weight independent of the batch size, as the task losses are means).

    ``tasks_order`` defaults to the binary tasks in declared order; other tasks get their own tower.
    Task t's tower and AIT feed every later task, so only the last task owns its tower, AIT and the
    transfer layer into it; every task owns its head.
    """

    def __init__(
        self,
        encoder: EncoderSpec,
        tasks: list[TaskSpec],
        tasks_order: list[str] | None = None,
        calibration: float = 0.6,
        embeddings: Literal["shared", "per_task"] = "shared",
    ) -> None:
        super().__init__(encoder, tasks)
        if calibration < 0:
            raise ConfigError(f"arch.calibration={calibration} must be >= 0 (0: no calibrator)")
        self.order = ordered_tasks("aitm", tasks, tasks_order)
        self.calibration = calibration
        probe = encoder.build()
        dim = int(probe.stage_shapes[-1][0])
        if len(probe.stage_shapes[-1]) != 1:
            raise ConfigError(f"arch=aitm needs an encoder that outputs vectors; encoder={encoder.name} gives maps")
        self.inputs = SparseInputs(encoder, self.task_names, embeddings, probe)
        self.towers = nn.ModuleDict({t: self.inputs.body() for t in self.task_names})
        self.transfer = nn.ModuleDict({t: nn.Sequential(nn.Linear(dim, dim), nn.ReLU()) for t in self.order[:-1]})
        self.ait = nn.ModuleDict({t: AIT(dim) for t in self.order[1:]})
        self.heads = build_heads(tasks, probe)
        self._last_input: Tensor | None = None

    def features(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's ``z_t`` (the tower output for tasks outside the funnel)."""
        embedded = self.inputs(x)
        z = {t: self.towers[t](embedded[t]) for t in self.task_names}
        for previous, task in zip(self.order, self.order[1:]):
            z[task] = self.ait[task](self.transfer[previous](z[previous]), z[task])
        return z

    def attention(self, x: Tensor) -> dict[str, Tensor]:
        """(N, 2) AIT weights on (transferred information, own tower) for each task after the first."""
        embedded = self.inputs(x)
        z = {t: self.towers[t](embedded[t]) for t in self.order}
        weights = {}
        for previous, task in zip(self.order, self.order[1:]):
            p = self.transfer[previous](z[previous])
            weights[task] = self.ait[task].weights(p, z[task])
            z[task] = self.ait[task](p, z[task])
        return weights

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.training and torch.is_grad_enabled():
            self._last_input = x.detach()
        z = self.features(x)
        return {t: self.heads[t](z[t]) for t in self.task_names}

    def calibration_loss(self, outputs: dict[str, Tensor]) -> Tensor:
        """``mean_x sum_{t>=2} max(yhat_t - yhat_{t-1}, 0)`` of the funnel's predicted probabilities."""
        p = [torch.sigmoid(outputs[t].reshape(-1)) for t in self.order]
        return torch.stack([torch.relu(later - earlier) for earlier, later in zip(p, p[1:])]).sum(0).mean()

    def extra_losses(self) -> dict[str, Tensor]:
        """The calibrator on the last training batch, recomputed so its graph is apart from the task losses'."""
        x, self._last_input = self._last_input, None
        if x is None or self.calibration == 0:
            return {}
        z = self.features(x)
        return {
            "aitm_calibration": self.calibration * self.calibration_loss({t: self.heads[t](z[t]) for t in self.order})
        }

    def task_modules(self, task: str) -> list[nn.Module]:
        if task not in self.order:
            return [*self.inputs.task_modules(task), self.towers[task], self.heads[task]]
        if task != self.order[-1]:  # its tower and AIT feed the next task
            return [self.heads[task]]
        own: list[nn.Module] = [*self.inputs.task_modules(task), self.towers[task], self.ait[task]]
        return [*own, self.transfer[self.order[-2]], self.heads[task]]

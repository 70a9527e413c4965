"""Dynamic weight average (``dwa``): weights from how fast each task's loss fell last epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlrun.balancers.base import BALANCERS, LossWeighting, StepContext
from mtlrun.registry import positive


@BALANCERS.register("dwa")
class DynamicWeightAverage(LossWeighting):
    """Dynamic weight average (Liu, Johns & Davison, CVPR 2019, Eq. 7).

    With ``Lbar_t(e)`` the average training loss of task t over epoch e, during epoch e:

        r_t = Lbar_t(e-1) / Lbar_t(e-2),    w_t = T * exp(r_t / temperature) / sum_k exp(r_k / temperature)

    and ``w_t = 1`` during the first two epochs (no ratio yet). A task whose previous average loss is 0
    (switched off by a schedule) has no rate of change and gets ``r_t = 1``. An epoch average counts only
    the steps on which the task had labels (``ctx.present``); a task with none all epoch keeps its average.
    Weights sum to T (the number of tasks).
    The running epoch sums and the last two epoch averages are buffers, so checkpoints resume them;
    the step count and epoch bookkeeping are plain integers in the module's extra state.
    """

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        positive("balancer", temperature=temperature)
        self.temperature = temperature
        T = self.num_tasks
        self.register_buffer("epoch_loss_sum", torch.zeros(T))
        #: steps of the running epoch on which each task had labels (its average's denominator)
        self.register_buffer("epoch_loss_count", torch.zeros(T))
        #: row 0: average loss of the last completed epoch, row 1: of the one before
        self.register_buffer("epoch_averages", torch.ones(2, T))
        self.register_buffer("current_weights", torch.ones(T))
        self._epoch = 0
        self._steps_in_epoch = 0
        self._completed_epochs = 0

    def context_needs(self) -> dict[str, str]:
        return {"epoch": "its weights change at epoch boundaries"}

    def weights(self, losses: Tensor, ctx: StepContext) -> Tensor:
        if ctx.epoch != self._epoch:
            if self._steps_in_epoch:
                self._close_epoch()
            self._epoch = ctx.epoch
            self._refresh_weights()
        self.epoch_loss_sum += losses.detach().to(self.epoch_loss_sum)
        self.epoch_loss_count += 1.0 if ctx.present is None else ctx.present.to(self.epoch_loss_count)
        self._steps_in_epoch += 1
        return self.current_weights.to(losses, copy=True)

    def _close_epoch(self) -> None:
        self.epoch_averages[1].copy_(self.epoch_averages[0])
        count = self.epoch_loss_count
        # a task without labels all epoch keeps its last average (no rate of change: ratio 1)
        average = torch.where(count > 0, self.epoch_loss_sum / count.clamp_min(1.0), self.epoch_averages[1])
        self.epoch_averages[0].copy_(average)
        self.epoch_loss_sum.zero_()
        self.epoch_loss_count.zero_()
        self._steps_in_epoch = 0
        self._completed_epochs += 1

    def _refresh_weights(self) -> None:
        if self._completed_epochs < 2:
            self.current_weights.fill_(1.0)
            return
        last, before = self.epoch_averages[0], self.epoch_averages[1]
        # a task switched off by a schedule has zero loss: no rate to compare, so ratio 1
        ratio = torch.where(before > 0, last / before.clamp_min(torch.finfo(before.dtype).tiny), torch.ones_like(last))
        self.current_weights.copy_(self.num_tasks * torch.softmax(ratio / self.temperature, dim=0))

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "epoch": self._epoch,
            "steps_in_epoch": self._steps_in_epoch,
            "completed_epochs": self._completed_epochs,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._epoch = int(state["epoch"])
        self._steps_in_epoch = int(state["steps_in_epoch"])
        self._completed_epochs = int(state["completed_epochs"])

"""Entire space multi-task model (Ma et al., SIGIR 2018)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.embedded import SparseInputs
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.funnel import funnel


def product_logit(a: Tensor, b: Tensor) -> Tensor:
    """``logit(sigmoid(a) * sigmoid(b))``, computed in log space so it stays finite:
    ``log p1 + log p2 - log(1 - p1 p2)`` with ``1 - p1 p2 = (1 - p1) + p1 (1 - p2)``."""
    log_p1, log_p2 = F.logsigmoid(a), F.logsigmoid(b)
    log_not = torch.logaddexp(F.logsigmoid(-a), log_p1 + F.logsigmoid(-b))
    return log_p1 + log_p2 - log_not


@ARCHS.register("esmm")
class ESMM(MultiTaskModel):
    """pCTCVR = pCTR x pCVR, both learned over every impression (Ma et al., SIGIR 2018, eq. 1-3).

    A CTR tower and a CVR tower (fresh copies of the encoder, on one shared embedding of the
    fields, Section 2.3) give ``pCTR = sigmoid(a)`` and ``pCVR = sigmoid(b)``. The click task's
    output is ``a``; the conversion task's output is the logit of ``pCTCVR = pCTR * pCVR``, so its
    usual binary loss is the paper's CTCVR loss on all impressions, ``L = sum_i l(y_i, pCTR_i) +
    sum_i l(y_i & z_i, pCTR_i * pCVR_i)`` (eq. 3), and the CVR tower is never trained on clicked
    rows alone: that selection bias is what the paper removes. The conversion labels are whether
    the impression converted (a conversion implies a click). pCVR itself, the rate the paper
    evaluates on clicked rows, is :meth:`given_output` (scored as ``<metric>_given_<click task>``
    when the dataset declares the conversion task ``given`` the click task).

    ``ctr_task``/``cvr_task`` default to the first two binary tasks in declared order. Other tasks
    get their own tower on the shared embedding. The CTR tower feeds both tasks, so it is shared
    (with the embedding); the CVR tower and head belong to the conversion task.
    """

    def __init__(
        self,
        encoder: EncoderSpec,
        tasks: list[TaskSpec],
        ctr_task: str | None = None,
        cvr_task: str | None = None,
        embeddings: Literal["shared", "per_task"] = "shared",
    ) -> None:
        super().__init__(encoder, tasks)
        self.ctr_task, self.cvr_task = funnel("esmm", tasks, {"ctr_task": ctr_task, "cvr_task": cvr_task})
        probe = encoder.build()
        self.inputs = SparseInputs(encoder, self.task_names, embeddings, probe)
        self.towers = nn.ModuleDict({t: self.inputs.body() for t in self.task_names})
        self.heads = build_heads(tasks, probe)

    def logits(self, x: Tensor) -> dict[str, Tensor]:
        """Every tower's own logit: ``a`` (CTR), ``b`` (CVR), and the other tasks'."""
        embedded = self.inputs(x)
        return {t: self.heads[t](self.towers[t](embedded[t])) for t in self.task_names}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.logits(x)
        out[self.cvr_task] = product_logit(out[self.ctr_task], out[self.cvr_task])
        return out

    def given_output(self, task: str, x: Tensor, outputs: dict[str, Tensor]) -> Tensor:
        """The conversion task's pCVR logit ``b`` (what the paper scores on clicked rows); else ``outputs[task]``."""
        if task != self.cvr_task:
            return outputs[task]
        embedded = self.inputs.task_input(x, task)
        return self.heads[task](self.towers[task](embedded))

    def task_modules(self, task: str) -> list[nn.Module]:
        if task == self.ctr_task:  # its tower and head also make pCTCVR
            return []
        return [*self.inputs.task_modules(task), self.towers[task], self.heads[task]]

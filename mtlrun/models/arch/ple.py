"""Progressive layered extraction (Tang et al., RecSys 2020)."""

from __future__ import annotations

from functools import partial
from typing import Literal

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.embedded import SparseInputs
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.experts import ExtractionLevel, LevelOutput, at_least


def _stage_expert(inputs: SparseInputs, index: int) -> nn.Module:
    """A freshly initialised copy of the encoder's stage ``index`` (without its embedding layer, which is shared)."""
    return inputs.body().stages[index]


@ARCHS.register("ple")
class PLE(MultiTaskModel):
    """Stacked CGC extraction levels, one per encoder stage (Tang et al., RecSys 2020, eq. 5-6).

    At level l every expert is a fresh copy of encoder stage l. Task t's experts and gate read task
    t's output of level l-1, the shared experts and the shared gate read the shared output of level
    l-1 (all read the input x at level 0). At intermediate levels the shared gate mixes *all* experts
    of the level, so task t's intermediate experts feed the shared path and hence every task: they
    are shared parameters, and so is any gate of task t whose output reaches such an expert (see
    :meth:`task_modules`).

    On sparse features level 0 reads the embedded row: one embedding table per field shared by every
    expert and gate (``embeddings=shared``, Tang et al. Section 4.1), or the whole first stage with its
    own tables in every level-0 expert (``per_expert``; the gates then read the raw row).
    """

    def __init__(
        self,
        encoder: EncoderSpec,
        tasks: list[TaskSpec],
        num_shared_experts: int = 1,
        num_task_experts: int = 1,
        embeddings: Literal["shared", "per_expert"] = "shared",
    ) -> None:
        super().__init__(encoder, tasks)
        at_least("arch", 1, num_shared_experts=num_shared_experts)
        at_least("arch", 0, num_task_experts=num_task_experts)
        probe = encoder.build()
        self.inputs = SparseInputs(encoder, self.task_names, embeddings, probe)
        in_shapes = [tuple(self.inputs.in_shape), *probe.stage_shapes[:-1]]
        last = len(probe.stages) - 1
        self.levels = nn.ModuleList(
            ExtractionLevel(
                self.task_names,
                partial(_stage_expert, self.inputs, i),
                in_shapes[i],
                num_shared_experts,
                num_task_experts,
                shared_gate=i < last,
            )
            for i in range(len(probe.stages))
        )
        self.heads = build_heads(tasks, probe)

    def _levels(self, x: Tensor) -> list[LevelOutput]:
        x = self.inputs.task_input(x, self.task_names[0])
        task_inputs, shared = {t: x for t in self.task_names}, x
        outputs = []
        for level in self.levels:
            out = level(task_inputs, shared)
            outputs.append(out)
            task_inputs, shared = out.task_features, out.shared_features
        return outputs

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        """Every gate's expert weights, keyed ``level<l>/<task>`` and ``level<l>/shared``."""
        weights = {}
        for i, out in enumerate(self._levels(x)):
            weights.update({f"level{i}/{t}": w for t, w in out.task_gates.items()})
            if out.shared_gate is not None:
                weights[f"level{i}/shared"] = out.shared_gate
        return weights

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        final = self._levels(x)[-1].task_features
        return {t: self.heads[t](final[t]) for t in self.task_names}

    def task_modules(self, task: str) -> list[nn.Module]:
        """The last level's experts and gate of ``task``, its head, and its gates that reach no shared path.

        Task t's gate at level l produces t's level-l features, which feed t's experts at level
        l+1; those feed the shared gate when level l+1 is intermediate. So t's gate at level l is
        t's alone iff l >= L-2 (L levels) or there are no task experts at all.
        """
        last = len(self.levels) - 1
        no_task_experts = len(self.levels[0].task_experts[task]) == 0
        own_gates = [lvl.task_gates[task] for i, lvl in enumerate(self.levels) if i >= last - 1 or no_task_experts]
        return [self.levels[-1].task_experts[task], *own_gates, self.heads[task]]

"""Experts and gates shared by the mixture-of-experts architectures (MMoE, CGC, PLE, DSelect-k).

An :class:`ExtractionLevel` is the building block of all four: a pool of shared experts, an
optional pool of experts per task, one gate per task that mixes its own and the shared experts,
and (PLE's intermediate levels only) a shared gate that mixes every expert of the level. MMoE is
a level with no task experts; CGC is one level with both; PLE stacks levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtlrun.errors import ConfigError

#: builds a gate mapping an input of the given shape (no batch) to (N, num_experts) expert weights
GateFactory = Callable[[tuple[int, ...], int], nn.Module]


def flat_size(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def at_least(prefix: str, minimum: int, **values: int) -> None:
    """Raise a one-line ConfigError unless every value is >= ``minimum``."""
    for key, value in values.items():
        if value < minimum:
            raise ConfigError(f"{prefix}.{key}={value} must be >= {minimum}")


#: gates read a feature map average-pooled to at most this many cells per side and channel
GATE_GRID = 16


def gate_pool(in_shape: tuple[int, ...]) -> tuple[nn.Module, tuple[int, ...]]:
    """What a gate reads of an input of ``in_shape``, and that reading's shape.

    Vectors and small maps as they are; a map larger than ``GATE_GRID`` on a side adaptive-average-
    pooled to at most GATE_GRID x GATE_GRID cells, so gates on full-size images or dense feature
    maps stay small (a linear gate on a flattened 288x384 image would need 332k weights per expert).
    """
    if len(in_shape) == 3 and max(in_shape[1], in_shape[2]) > GATE_GRID:
        size = (min(in_shape[1], GATE_GRID), min(in_shape[2], GATE_GRID))
        return nn.AdaptiveAvgPool2d(size), (in_shape[0], *size)
    return nn.Identity(), tuple(in_shape)


class SoftmaxGate(nn.Module):
    """The MMoE gate ``g(x) = softmax(W vec(p(x)) + b)`` over the experts (Ma et al., KDD 2018, eq. 5),
    with ``p`` the pooling of large feature maps (:func:`gate_pool`; identity otherwise)."""

    def __init__(self, in_shape: tuple[int, ...], num_experts: int) -> None:
        super().__init__()
        self.pool, pooled = gate_pool(in_shape)
        self.linear = nn.Linear(flat_size(pooled), num_experts)

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.linear(self.pool(x).flatten(1)), dim=-1)


def mix(weights: Tensor, outputs: Sequence[Tensor]) -> Tensor:
    """``sum_e weights[:, e] * outputs[e]`` for expert outputs of any shape (N, ...)."""
    stacked = torch.stack(list(outputs), dim=1)
    return (weights.view(*weights.shape, *([1] * (stacked.dim() - 2))) * stacked).sum(dim=1)


@dataclass
class LevelOutput:
    task_features: dict[str, Tensor]
    shared_features: Tensor | None
    task_gates: dict[str, Tensor]
    shared_gate: Tensor | None


class ExtractionLevel(nn.Module):
    """One customized-gate-control level (Tang et al., RecSys 2020, eq. 1-4).

    Task t's output is ``g_t(x_t) · [E_t,1(x_t) .. E_t,m(x_t), E_s,1(x_s) .. E_s,n(x_s)]``: its gate
    mixes its own experts (fed with its own input) and the shared experts (fed with the shared
    input). With ``shared_gate`` the level also yields a shared output mixing every expert of the
    level with a gate on the shared input (PLE's intermediate levels).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        make_expert: Callable[[], nn.Module],
        in_shape: tuple[int, ...],
        num_shared: int,
        num_task: int,
        *,
        shared_gate: bool = False,
        make_gate: GateFactory = SoftmaxGate,
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.shared_experts = nn.ModuleList(make_expert() for _ in range(num_shared))
        self.task_experts = nn.ModuleDict({t: nn.ModuleList(make_expert() for _ in range(num_task)) for t in tasks})
        self.task_gates = nn.ModuleDict({t: make_gate(in_shape, num_task + num_shared) for t in tasks})
        self.shared_gate = make_gate(in_shape, num_task * len(self.tasks) + num_shared) if shared_gate else None

    def forward(self, task_inputs: dict[str, Tensor], shared_input: Tensor) -> LevelOutput:
        shared_out = [expert(shared_input) for expert in self.shared_experts]
        own_out = {t: [expert(task_inputs[t]) for expert in self.task_experts[t]] for t in self.tasks}
        gates = {t: self.task_gates[t](task_inputs[t]) for t in self.tasks}
        features = {t: mix(gates[t], own_out[t] + shared_out) for t in self.tasks}
        shared_features = shared_weights = None
        if self.shared_gate is not None:
            shared_weights = self.shared_gate(shared_input)
            every = [out for t in self.tasks for out in own_out[t]] + shared_out
            shared_features = mix(shared_weights, every)
        return LevelOutput(features, shared_features, gates, shared_weights)

    def task_output(self, task: str, task_input: Tensor, shared_input: Tensor) -> Tensor:
        """Task ``task``'s features alone: its own experts and gate and the shared experts (no other task's modules)."""
        shared_out = [expert(shared_input) for expert in self.shared_experts]
        own_out = [expert(task_input) for expert in self.task_experts[task]]
        return mix(self.task_gates[task](task_input), own_out + shared_out)

    def task_modules(self, task: str) -> list[nn.Module]:
        """This level's modules that only ``task``'s output depends on (when no shared gate reads them)."""
        return [self.task_experts[task], self.task_gates[task]]

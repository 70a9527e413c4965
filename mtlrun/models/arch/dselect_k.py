"""DSelect-k: differentiable top-k expert selection (Hazimeh et al., NeurIPS 2021)."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.errors import ConfigError
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.encoders import EncoderSpec
from mtlrun.models.experts import ExtractionLevel, at_least, flat_size, gate_pool
from mtlrun.registry import positive

#: keeps the entropy's log() and the unreachable-code penalty finite once selectors are exactly binary
ENTROPY_EPS = 1e-6


def smooth_step(t: Tensor, gamma: float) -> Tensor:
    """The smooth-step function (Hazimeh et al., 2021, eq. 2), exactly 0 below -gamma/2 and 1 above gamma/2.

    ``S(t) = -2 t^3 / gamma^3 + 3 t / (2 gamma) + 1/2`` on ``[-gamma/2, gamma/2]``: continuously
    differentiable, and its gradient vanishes outside that interval, so a selector that leaves it
    is exactly binary (sparse) from then on.
    """
    cubic = -2.0 / gamma**3 * t**3 + 3.0 / (2.0 * gamma) * t + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), cubic))


class DSelectKGate(nn.Module):
    """k single-expert selectors over binary codes, mixed by a softmax (Hazimeh et al., 2021, eq. 3-5).

    Expert e has the m-bit binary code ``l(e)`` (m = ceil(log2 n)). Selector i has logits
    ``z_i`` in R^m and puts weight ``r(z_i)_e = prod_j S(z_ij)^[l(e)_j = 1] (1 - S(z_ij))^[l(e)_j = 0]``
    on expert e; the gate is ``q = sum_i softmax(w)_i r(z_i)``, so at most k experts get non-zero
    weight once every S(z_ij) is binary. With ``per_example`` z and w are linear functions of the
    flattened input, large maps average-pooled first (example-conditioned gating), otherwise free
    parameters (task-only gating).
    Initialisation follows the authors' code: z ~ U(-gamma/100, gamma/100), so every selector
    starts near the uniform mixture, and w ~ U(-0.05, 0.05).
    """

    def __init__(self, in_shape: tuple[int, ...], num_experts: int, k: int, gamma: float, per_example: bool) -> None:
        super().__init__()
        self.k, self.gamma, self.num_experts = k, gamma, num_experts
        self.num_bits = max(1, math.ceil(math.log2(num_experts)))
        codes = [[(e >> (self.num_bits - 1 - j)) & 1 for j in range(self.num_bits)] for e in range(num_experts)]
        self.register_buffer("codes", torch.tensor(codes, dtype=torch.float32), persistent=False)
        self.per_example = per_example
        self.pool, pooled = gate_pool(in_shape)
        z_bound = gamma / 100
        if per_example:
            in_dim = flat_size(pooled)
            self.z_logits = nn.Linear(in_dim, k * self.num_bits)
            self.w_logits = nn.Linear(in_dim, k)
            for p in self.z_logits.parameters():
                nn.init.uniform_(p, -z_bound, z_bound)
            for p in self.w_logits.parameters():
                nn.init.uniform_(p, -0.05, 0.05)
        else:
            self.z = nn.Parameter(torch.empty(k, self.num_bits).uniform_(-z_bound, z_bound))
            self.w = nn.Parameter(torch.empty(k).uniform_(-0.05, 0.05))

    def logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Selector logits z (N, k, m) and selector-mixing logits w (N, k)."""
        n = x.shape[0]
        if self.per_example:
            flat = self.pool(x).flatten(1)
            return self.z_logits(flat).view(n, self.k, self.num_bits), self.w_logits(flat)
        return self.z.expand(n, -1, -1), self.w.expand(n, -1)

    def selectors(self, z: Tensor) -> Tensor:
        """Single-expert selector outputs r(z_i) (N, k, n)."""
        s = smooth_step(z, self.gamma).unsqueeze(-2)  # (N, k, 1, m)
        per_bit = self.codes * s + (1 - self.codes) * (1 - s)  # (N, k, n, m)
        return per_bit.prod(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        z, w = self.logits(x)
        return (torch.softmax(w, dim=-1).unsqueeze(-1) * self.selectors(z)).sum(dim=1)

    def regularisers(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean over the batch of the selectors' summed entropy, and of ``sum_i (1 / sum_e r(z_i)_e - 1)``.

        The second term is the authors' penalty for n not a power of 2 (codes beyond n - 1 are
        unreachable, so a selector could put weight nowhere); shifted by 1 per selector so it is
        0 once every selector's weight lies on existing experts.
        """
        r = self.selectors(self.logits(x)[0])
        entropy = -(r * torch.log(r + ENTROPY_EPS)).sum(dim=(1, 2)).mean()
        reach = (1.0 / r.sum(dim=-1).clamp_min(ENTROPY_EPS) - 1.0).sum(dim=1).mean()
        return entropy, reach


@ARCHS.register("dselect_k")
class DSelectK(MultiTaskModel):
    """Shared experts with one DSelect-k gate per task (Hazimeh et al., NeurIPS 2021).

    MMoE with the softmax gates replaced by DSelect-k gates (see :class:`DSelectKGate`): each task
    mixes at most ``k`` of the ``num_experts`` experts once its selectors converge.
    ``entropy_reg`` weights the entropy of every single-expert selector (the paper's optional
    regulariser, which speeds convergence to binary selections); it and the unreachable-code
    penalty (when num_experts is not a power of 2) are returned by :meth:`extra_losses`, recomputed
    from the last training batch so their graph is separate from the task losses'.
    """

    def __init__(
        self,
        encoder: EncoderSpec,
        tasks: list[TaskSpec],
        num_experts: int = 8,
        k: int = 2,
        gamma: float = 1.0,
        entropy_reg: float = 0.0,
        per_example: bool = True,
    ) -> None:
        super().__init__(encoder, tasks)
        at_least("arch", 2, num_experts=num_experts)
        at_least("arch", 1, k=k)
        if k > num_experts:
            raise ConfigError(f"arch.k={k} must be <= arch.num_experts={num_experts}")
        positive("arch", gamma=gamma)
        if entropy_reg < 0:
            raise ConfigError(f"arch.entropy_reg={entropy_reg} must be >= 0")
        self.entropy_reg = entropy_reg
        self.power_of_two = num_experts & (num_experts - 1) == 0
        make_gate = partial(DSelectKGate, k=k, gamma=gamma, per_example=per_example)
        probe = encoder.build()
        self.level = ExtractionLevel(
            self.task_names, encoder.build, encoder.input_shape, num_experts, 0, make_gate=make_gate
        )
        self.heads = build_heads(tasks, probe)
        self._routing_input: Tensor | None = None

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's expert weights (N, num_experts)."""
        return {t: self.level.task_gates[t](x) for t in self.task_names}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.training:
            self._routing_input = x.detach()
        out = self.level({t: x for t in self.task_names}, x)
        return {t: self.heads[t](out.task_features[t]) for t in self.task_names}

    def extra_losses(self) -> dict[str, Tensor]:
        if self._routing_input is None or (self.entropy_reg == 0 and self.power_of_two):
            return {}
        terms = [self.level.task_gates[t].regularisers(self._routing_input) for t in self.task_names]
        losses = {}
        if self.entropy_reg > 0:
            losses["dselect_k_entropy"] = self.entropy_reg * torch.stack([e for e, _ in terms]).sum()
        if not self.power_of_two:
            losses["dselect_k_unreachable"] = torch.stack([r for _, r in terms]).sum()
        return losses

    def task_modules(self, task: str) -> list[nn.Module]:
        return [*self.level.task_modules(task), self.heads[task]]

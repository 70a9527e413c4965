"""Divergence policy: what a run does when a task loss or the gradient stops being finite.

``trainer.on_nan=stop`` (the default) ends the run with status ``diverged``; ``skip`` drops the
offending step (no optimizer update) and ends the run only after ``trainer.max_nan_skips`` skipped
steps.

Every step is checked, but with ``stop`` nothing in the step waits for the device, and the check
adds almost nothing to the step: the trainer already keeps the epoch's running sum of each task's
loss on the device, and a non-finite loss leaves that sum non-finite from then on. The guard only
counts, on the device, each task's steps before its sum went non-finite (one comparison and one
addition a step), which gives the first bad step and the tasks that went bad in it exactly.
A non-finite gradient makes the weights non-finite at the optimizer
step, so the gradient is not inspected each step either: the weights are checked instead, once,
whenever the flags are read. The host reads them at the epoch's one sync and before every
checkpoint. The price is a delay: a run that diverges mid-epoch trains on (with NaN weights) until
the end of that epoch before it stops; the last checkpoint written before that is the last good
one and is never overwritten with the bad state. ``skip`` must decide before the
optimizer step, so it reads one flag per step (as ``torch.amp.GradScaler`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

POLICIES = ("stop", "skip")


class Diverged(RuntimeError):
    """A task loss or the gradient became NaN or infinite (``divergence`` says where)."""

    def __init__(self, message: str, divergence: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.divergence = divergence or {}


@dataclass
class NanGuard:
    """Per-step finiteness checks that accumulate on ``device``; see the module docstring."""

    tasks: Sequence[str]
    device: torch.device
    policy: str = "stop"
    max_skips: int = 10

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"on_nan={self.policy} is not valid; choose one of: {', '.join(POLICIES)}")
        self.skipped = 0
        #: ``skip``: the last observed step's flags, one per task loss, then the gradient's
        self._last_flags = torch.zeros(len(self.tasks) + 1, dtype=torch.bool, device=self.device)
        self.last_skip: dict[str, Any] | None = None
        self._weights_bad: dict[str, Any] | None = None
        #: ``stop``: the epoch's running loss sums, the step they start at, their epoch, and how many
        #: steps were added while they were still finite
        self._running: Tensor | None = None
        self._running_start, self._running_epoch = 0, 0
        self._finite_steps = torch.zeros(len(self.tasks), dtype=torch.long, device=self.device)  # per task

    def observe(self, step: int, epoch: int, losses: dict[str, Tensor], grads: Sequence[Tensor]) -> Tensor:
        """``skip`` policy: check one step's task losses and gradients; returns the step's "bad"
        flag (on the device, not read) for :meth:`skip`."""
        values = torch.stack([losses[t] for t in self.tasks]).detach().reshape(-1).float()
        if grads:  # one norm per gradient tensor in a fused kernel, summed: inf or NaN anywhere shows
            values = torch.cat([values, torch.stack(torch._foreach_norm(list(grads))).sum().reshape(1)])
        else:
            values = torch.cat([values, values.new_zeros(1)])
        flags = torch.isfinite(values).logical_not_()  # one per task loss, then the gradient's
        self._last_flags = flags
        return flags.any()

    def observe_running(self, running: Tensor, step: int, epoch: int) -> None:
        """``stop`` policy: ``running`` holds the epoch's sums of the task losses up to ``step``
        (the same tensor, updated in place, for the whole epoch; a new one starts a new count)."""
        if self.policy != "stop":
            return
        if running is not self._running:
            self._running, self._running_start, self._running_epoch = running, step, epoch
            self._finite_steps.zero_()
        self._finite_steps.add_(torch.isfinite(running))

    def skip(self, bad: Tensor, step: int, epoch: int) -> bool:
        """``skip`` policy: whether this step must be skipped (reads the flag: one host sync). Raises
        :class:`Diverged` once more than ``max_skips`` steps were skipped."""
        if not bool(bad):
            return False
        self.skipped += 1
        self.last_skip = self._describe(step, epoch, self._last_flags.tolist())
        if self.skipped > self.max_skips:
            where = self.last_skip
            raise Diverged(
                f"{self._what(where)} at step {step} (epoch {epoch}); stopped after "
                f"{self.max_skips} skipped step(s) (trainer.max_nan_skips={self.max_skips})",
                {**where, "skipped_steps": self.skipped},
            )
        return True

    def check(self, params: Sequence[Tensor] = ()) -> None:
        """Raise :class:`Diverged` if any step so far was bad or any of ``params`` (the weights) is
        no longer finite (``stop``; reads the device flags)."""
        where = self._find(params)
        if where is None:
            return
        if where["step"] is None:
            raise Diverged(
                f"the gradient became non-finite (the weights are no longer finite) in epoch {where['epoch']}",
                where,
            )
        raise Diverged(f"{self._what(where)} at step {where['step']} (epoch {where['epoch']})", where)

    def tripped(self, params: Sequence[Tensor] = ()) -> bool:
        """Whether a bad step happened, or the weights went non-finite, under ``stop`` since the
        start (reads the device flags)."""
        return self._find(params) is not None

    def _find(self, params: Sequence[Tensor]) -> dict[str, Any] | None:
        if self.policy != "stop" or self._running is None:  # nothing trained yet
            return None
        if not bool(torch.isfinite(self._running).all()):
            finite = self._finite_steps.tolist()
            first = min(finite)
            return self._describe(self._running_start + first, self._running_epoch, [n == first for n in finite])
        if self._weights_bad is None and params:
            norms = torch._foreach_norm([p.detach() for p in params])
            if not bool(torch.isfinite(torch.stack(norms).sum())):
                flags = [False] * len(self.tasks) + [True]  # the gradient's flag
                # somewhere in that epoch: the gradient is not read per step
                self._weights_bad = {**self._describe(0, self._running_epoch, flags), "step": None}
        return self._weights_bad

    def _describe(self, step: int, epoch: int, flags: list[bool]) -> dict[str, Any]:
        n = len(self.tasks)
        tasks = [t for t, b in zip(self.tasks, flags[:n]) if b]
        return {"step": step, "epoch": epoch, "tasks": tasks, "gradient": any(flags[n:]), "policy": self.policy}

    @staticmethod
    def _what(where: dict[str, Any]) -> str:
        if where["tasks"]:
            return f"loss of task(s) {', '.join(where['tasks'])} became non-finite"
        return "the gradient became non-finite"

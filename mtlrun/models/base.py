"""The multi-task model contract every architecture keeps.

``forward(x) -> {task: output}`` for exactly the run's tasks; ``shared_parameters()`` and
``task_parameters(task)`` partition all parameters (gradient balancers take the task Jacobian on
the shared ones). Models with a single shared representation expose it through ``encode`` and
``decode`` so representation-gradient balancers (MGDA-UB, ``rep_grad``) can differentiate
with respect to it; the others set ``has_representation = False``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.errors import ConfigError
from mtlrun.models.encoders import EncoderSpec, StagedEncoder
from mtlrun.plugins.resolve import subclass_contract
from mtlrun.registry import Registry

ARCHS: Registry[MultiTaskModel] = Registry("arch")


class MultiTaskModel(nn.Module):
    """Base class: holds the task specs and one head per task in ``self.heads``."""

    #: whether ``encode``/``decode`` exist (one shared representation feeds every head)
    has_representation: bool = False
    #: encoder names this architecture cannot work with (a clear error instead of a crash)
    unsupported_encoders: tuple[str, ...] = ()
    #: whether task t's output depends only on shared modules and t's own, so each task may read its
    #: own inputs (multi-input datasets); such architectures implement :meth:`task_output`
    supports_multi_input: bool = False

    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec]) -> None:
        super().__init__()
        if encoder.name in self.unsupported_encoders:
            raise ConfigError(f"arch={type(self).__name__} does not support encoder={encoder.name}")
        self.task_names = [t.name for t in tasks]
        self.encoder_spec = encoder
        #: per-task input adapters of a multi-input dataset whose tasks' inputs differ in shape
        self.input_adapters: nn.ModuleDict | None = None

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.decode(self.encode(x))

    def encode(self, x: Tensor) -> Tensor:
        raise ConfigError(f"arch={type(self).__name__} has no single shared representation (needed by rep_grad)")

    def decode(self, representation: Tensor) -> dict[str, Tensor]:
        raise ConfigError(f"arch={type(self).__name__} has no single shared representation (needed by rep_grad)")

    def task_modules(self, task: str) -> list[nn.Module]:
        """Modules that belong to ``task`` alone (its head by default)."""
        return [self.heads[task]]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        own = [p for m in self.task_modules(task) for p in m.parameters()]
        if self.input_adapters is not None:
            own += list(self.input_adapters[task].parameters())
        return own

    def forward_task(self, x: Tensor, task: str) -> Tensor:
        """Task ``task``'s output on its own inputs ``x`` (multi-input datasets).

        The contract: ``forward_task(x, t)`` equals ``forward(x)[t]`` (after task t's input adapter,
        when the tasks' inputs differ in shape), and runs only the shared modules and task t's own,
        so no other task's parameters or batch-norm statistics see task t's inputs.
        """
        if self.input_adapters is not None:
            x = self.input_adapters[task](x)
        return self.task_output(x, task)

    def task_output(self, x: Tensor, task: str) -> Tensor:
        """``forward(x)[task]`` computed without other tasks' modules (architectures that support multi-input)."""
        raise ConfigError(f"arch={type(self).__name__} does not support multi-input datasets")

    def shared_parameters(self) -> list[nn.Parameter]:
        owned = {id(p) for t in self.task_names for p in self.task_parameters(t)}
        return [p for p in self.parameters() if id(p) not in owned]

    def clip_gradients(self, max_norm: float) -> None:
        """Clip the global gradient norm; models made of independent networks clip each alone."""
        nn.utils.clip_grad_norm_([p for p in self.parameters() if p.grad is not None], max_norm)

    def given_output(self, task: str, x: Tensor, outputs: dict[str, Tensor]) -> Tensor:
        """Task ``task``'s output for the metrics scored on the positive rows of its ``given`` task
        (``TaskSpec.given``): by default its own output; ESMM's conversion task gives its pCVR there."""
        return outputs[task]

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer before training epoch ``epoch`` (1-based), again when a resumed run
        re-enters that epoch: a model that changes between epochs (``learn_to_branch`` fixing its
        tree) keeps what it decided in buffers, so this is idempotent and checkpoints carry it. The
        trainer takes ``shared_parameters()``/``task_parameters()`` afresh after it."""

    def check_epochs(self, epochs: int) -> None:
        """Refuse a ``trainer.epochs`` this architecture cannot use (a one-line ``ConfigError``)."""

    def run_files(self) -> dict[str, str]:
        """Files this model adds to the run folder (name -> text, e.g. a found tree), written after
        each epoch whenever they change."""
        return {}

    def extra_losses(self) -> dict[str, Tensor]:
        """Regularisers that are not tasks (e.g. soft-sharing penalties); added to the objective."""
        return {}

    def parameter_counts(self) -> dict[str, Any]:
        """Total, shared and per-task parameter counts (recorded in summary.json)."""
        return {
            "total": sum(p.numel() for p in self.parameters()),
            "shared": sum(p.numel() for p in self.shared_parameters()),
            "per_task": {t: sum(p.numel() for p in self.task_parameters(t)) for t in self.task_names},
        }


#: a user's architecture (``arch._target_=pkg.mod.Name`` or an entry point)
ARCHS.accept_plugins(subclass_contract((MultiTaskModel,), ("encoder", "tasks")))


def build_heads(tasks: list[TaskSpec], encoder: StagedEncoder | int) -> nn.ModuleDict:
    """One head per task on ``encoder``'s output (vector or feature map; an int is a vector width)."""
    if isinstance(encoder, int):
        return nn.ModuleDict({t.name: t.build_head(encoder) for t in tasks})
    from mtlrun.models.heads import build_head

    return nn.ModuleDict({t.name: build_head(t, encoder) for t in tasks})

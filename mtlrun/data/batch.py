"""The two forms of a batch, and the one function that turns either into task losses.

- A **common-input** batch ``(x, {task: y})``: every task reads the same samples (the usual MTL
  setting); one forward gives every task's output.
- A **multi-input** batch ``{task: (x_t, {task: y_t})}``: each task has its own samples (LibMTL's
  ``multi_input``: Office-31 domains, one corpus per NLP task); task t's output is
  ``model.forward_task(x_t, t)``, which runs the shared modules and task t's own modules only.

:func:`batch_losses` is what the trainer's step, its loss closures for multi-batch and lookahead
balancers, the diagnostics and the curriculum probe all call, so no caller asks which form it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor, nn
from torch.func import functional_call

Batch = tuple[Tensor, dict[str, Tensor]]
MultiInputBatch = Mapping[str, Batch]
LossFn = Callable[[Tensor, Tensor], Tensor]


def is_multi_input_batch(batch: Batch | MultiInputBatch) -> bool:
    """Whether ``batch`` gives each task its own inputs (a mapping) rather than one ``(x, targets)`` pair."""
    return isinstance(batch, Mapping)


def batch_targets(batch: Batch | MultiInputBatch) -> dict[str, Tensor]:
    """``{task: targets}`` of a batch of either form (each task's own targets in a multi-input batch)."""
    if is_multi_input_batch(batch):
        return {task: targets[task] for task, (_, targets) in batch.items()}
    return batch[1]


class _TaskForward(nn.Module):
    """``model.forward_task(x, task)`` as a module's ``forward``, so ``functional_call`` can substitute parameters."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_task(x, self.task)


def task_output(model: nn.Module, x: Tensor, task: str, params: Mapping[str, Tensor] | None = None) -> Tensor:
    """Task ``task``'s output on its own inputs ``x``, optionally with ``params`` (``{name: tensor}``) substituted."""
    if params is None:
        return model.forward_task(x, task)
    return functional_call(_TaskForward(model, task), {f"model.{k}": v for k, v in params.items()}, (x,))


def batch_losses(
    model: nn.Module,
    loss_fns: Mapping[str, LossFn],
    batch: Batch | MultiInputBatch,
    params: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """``{task: loss}`` of ``model`` on a batch of either form, for the tasks of ``loss_fns`` (in their order).

    With ``params`` the model is evaluated functionally with those tensors (parameters and/or
    buffers, keyed as in ``named_parameters``) in place of its own (``torch.func.functional_call``).
    """
    if is_multi_input_batch(batch):
        losses = {}
        for task, loss_fn in loss_fns.items():
            x, targets = batch[task]
            losses[task] = loss_fn(task_output(model, x, task, params), targets[task])
        return losses
    x, targets = batch
    outputs = model(x) if params is None else functional_call(model, dict(params), (x,))
    return {task: loss_fn(outputs[task], targets[task]) for task, loss_fn in loss_fns.items()}

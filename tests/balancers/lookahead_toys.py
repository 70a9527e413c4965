"""Tiny models and step contexts for the multi-batch and bilevel balancer tests (float64, no trainer)."""

from __future__ import annotations

import json
import math

import torch
from torch import Tensor, nn
from torch.func import functional_call

from mtlrun.balancers.base import Batch, StepContext

TASKS = ["a", "b"]


class TinyLinear(nn.Module):
    """A shared linear layer and one linear head per task: outputs {task: (N,)}."""

    def __init__(self, tasks: list[str] = TASKS, d_in: int = 3, d_hidden: int = 2, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.shared = nn.Linear(d_in, d_hidden)
        self.heads = nn.ModuleDict({t: nn.Linear(d_hidden, 1) for t in tasks})
        self.double()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.shared(x)
        return {t: head(h).squeeze(-1) for t, head in self.heads.items()}


def make_batch(n: int = 8, seed: int = 0, tasks: list[str] = TASKS, d_in: int = 3) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    return x, {t: torch.randn(n, generator=g, dtype=torch.float64) for t in tasks}


def mse_losses(outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
    return {t: ((outputs[t] - targets[t]) ** 2).mean() for t in outputs}


def make_context(
    model: TinyLinear,
    batch: Batch,
    *,
    extra: list[Batch] | None = None,
    val: Batch | None = None,
    lr: float = 0.1,
    step: int = 0,
) -> tuple[dict[str, Tensor], StepContext]:
    """The step's losses (with graph) and a StepContext with every closure a trainer provides."""

    def compute_losses(b: Batch) -> dict[str, Tensor]:
        return mse_losses(model(b[0]), b[1])

    def functional_losses(params: dict[str, Tensor], b: Batch) -> dict[str, Tensor]:
        return mse_losses(functional_call(model, params, (b[0],)), b[1])

    ctx = StepContext(
        model=model,
        shared_params=list(model.shared.parameters()),
        task_params={t: list(h.parameters()) for t, h in model.heads.items()},
        epoch=1,
        step=step,
        extra_batches=list(extra or []),
        compute_losses=compute_losses,
        lr=lr,
        batch=batch,
        validation_batch=(lambda: val) if val is not None else None,
        functional_losses=functional_losses,
    )
    return compute_losses(batch), ctx


def task_gradients(model: nn.Module, batch: Batch, params: list[nn.Parameter]) -> Tensor:
    """The (T, P) matrix of per-task gradients on ``params``, one plain autograd call per task."""
    losses = mse_losses(model(batch[0]), batch[1])
    rows = []
    for t in losses:
        grads = torch.autograd.grad(losses[t], params, allow_unused=True, retain_graph=True)
        flat = [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]
        rows.append(torch.cat(flat))
    return torch.stack(rows)


def shared_grad(model: TinyLinear) -> Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.shared.parameters()])


#: end-to-end runs of these methods: TINY with an MLP encoder and without the single-task baselines report
FAST = ["trainer.epochs=2", "trainer.batch_size=64", "encoder=mlp", "report.baselines=false"]
#: the same with the default (conv, batch-norm) encoder, whose buffers the lookahead evaluations must not touch
FAST_CNN = ["trainer.epochs=2", "trainer.batch_size=64", "report.baselines=false"]


def check_cli_run(result) -> list[dict]:
    """The run completed two epochs with finite training losses; returns its metrics.jsonl rows."""
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed", summary.get("error")
    rows = [json.loads(line) for line in (result.run_dirs()[-1] / "metrics.jsonl").read_text().splitlines()]
    losses = [r["value"] for r in rows if r["split"] == "train" and r["metric"] == "loss"]
    assert losses and all(math.isfinite(v) for v in losses)
    assert {r["epoch"] for r in rows if r["split"] == "train"} == {1, 2}
    return rows

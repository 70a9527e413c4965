"""The trainer's state records: what each epoch produced, what a fit returns, the best epoch so far
and the position inside the current epoch. All of it is checkpointed (``Trainer.state_dict``), so a
resumed run continues with the same records as an uninterrupted one."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from mtlrun.results.objective import primary_score
from mtlrun.train.evaluate import Metrics


@dataclass
class EpochRecord:
    epoch: int
    step: int
    train_loss: dict[str, float]
    weights: dict[str, float]
    extra_losses: dict[str, float]
    val: Metrics
    val_loss: dict[str, float]
    #: test metrics after this epoch, when the trainer evaluates test every epoch (baselines)
    test: Metrics | None = None
    balancer_extras: dict[str, float] = field(default_factory=dict)
    #: the task schedule's loss multipliers in this epoch (empty without a schedule)
    schedule: dict[str, float] = field(default_factory=dict)
    #: the learning rate the epoch began with
    lr: float | None = None


@dataclass
class FitResult:
    epochs: list[EpochRecord]
    best_epoch: int
    best_state: dict[str, Tensor]
    train_seconds: float
    eval_seconds: float
    steps: int
    #: test metrics with the last and with the best-validation weights (unless tested every epoch)
    test_last: Metrics | None = None
    test_best: Metrics | None = None
    #: whether early stopping ended the fit before ``trainer.epochs``
    stopped_early: bool = False

    @property
    def best_record(self) -> EpochRecord:
        return next(r for r in self.epochs if r.epoch == self.best_epoch)


@dataclass
class BestEpoch:
    """The best-validation epoch so far: its score, its weights, and the reference it is scored
    against (the first epoch's validation metrics). Part of the trainer's state, so a resumed run
    picks the same best epoch as an uninterrupted one."""

    epoch: int = 0
    score: float = -math.inf
    state: dict[str, Tensor] = field(default_factory=dict)
    reference: Metrics | None = None

    def update(self, epoch: int, val: Metrics, primary: dict[str, str], directions: Any, model: nn.Module) -> float:
        """Score ``val`` (returned); keep ``model``'s weights if this epoch is the best so far (or the first)."""
        self.reference = self.reference or val
        relative = primary_score(val, self.reference, primary, directions)
        score = relative if relative is not None else -math.inf
        if score > self.score or self.epoch == 0:
            self.epoch, self.score = epoch, score
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return score

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "score": self.score, "state": self.state, "reference": self.reference}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.score = int(state["epoch"]), float(state["score"])
        self.state, self.reference = dict(state["state"]), state["reference"]


@dataclass
class EpochPosition:
    """How far the current epoch has got: the shuffling generator's state when the epoch began,
    the steps done and the sums gathered. A checkpoint taken between two steps of an epoch stores
    it, so the resumed run replays the same batch order and skips the steps already taken."""

    epoch: int
    shuffle_state: Tensor
    loss_sum: Tensor
    weight_sum: Tensor
    steps: int = 0  # steps counted in the sums
    taken: int = 0  # step groups drawn, including steps skipped for a non-finite value
    lr: float = 0.0  # the learning rate when the epoch began (its record's)
    extra_sum: dict[str, Tensor] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "shuffle_state": self.shuffle_state,
            "loss_sum": self.loss_sum,
            "weight_sum": self.weight_sum,
            "steps": self.steps,
            "taken": self.taken,
            "lr": self.lr,
            "extra_sum": dict(self.extra_sum),
            "extras": dict(self.extras),
        }


def record_from_dict(data: dict[str, Any]) -> EpochRecord:
    """An :class:`EpochRecord` from its ``dataclasses.asdict`` form (as checkpointed)."""
    return EpochRecord(**data)

"""Learning-rate schedules (``trainer.scheduler``) and early stopping (``trainer.early_stopping``);
their keys are checked in ``mtlrun.config.schema``.

Each schedule is one of torch's, stepped as it expects: the cosine ones per optimisation step
(their horizon is the run's steps, so a short run still anneals fully), ``step`` per epoch, and
``plateau`` per epoch on the validation score that picks the best epoch. The state of both is
saved in ``checkpoints/last.pt``. Single-task baselines are trained with the same schedule, so the
comparison with the multi-task run stays fair.
"""

from __future__ import annotations

from typing import Any

import torch

from mtlrun.config.schema import SCHEDULERS
from mtlrun.errors import choices_error


class LRSchedule:
    """One torch scheduler and when to step it: :meth:`after_step` and :meth:`after_epoch`."""

    def __init__(
        self,
        name: str,
        optimizer: torch.optim.Optimizer,
        *,
        epochs: int,
        steps_per_epoch: int,
        warmup_epochs: int = 0,
        step_size: int = 10,
        gamma: float = 0.1,
        min_lr: float = 0.0,
        plateau_patience: int = 5,
    ) -> None:
        if name not in SCHEDULERS:
            raise choices_error("trainer.scheduler", name, SCHEDULERS)
        self.name = name
        self.optimizer = optimizer
        steps = max(1, epochs * steps_per_epoch)
        self.per_step = name in ("cosine", "warmup_cosine")
        self.scheduler: Any = None
        if name == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=min_lr)
        elif name == "warmup_cosine":
            warm = max(1, warmup_epochs * steps_per_epoch) if warmup_epochs else 0
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps - warm), eta_min=min_lr)
            if warm:
                linear = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warm + 1), total_iters=warm)
                self.scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warm])
            else:
                self.scheduler = cosine
        elif name == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
        elif name == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=gamma, patience=plateau_patience, min_lr=min_lr
            )

    @classmethod
    def from_config(cls, trainer: Any, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> LRSchedule:
        """The schedule a ``trainer`` config asks for (``none`` when the config has no ``scheduler`` key)."""
        name = trainer.get("scheduler", "none") if hasattr(trainer, "get") else getattr(trainer, "scheduler", "none")
        if name == "none":
            return cls("none", optimizer, epochs=trainer.epochs, steps_per_epoch=steps_per_epoch)
        return cls(
            name,
            optimizer,
            epochs=trainer.epochs,
            steps_per_epoch=steps_per_epoch,
            warmup_epochs=trainer.warmup_epochs,
            step_size=trainer.step_size,
            gamma=trainer.gamma,
            min_lr=trainer.min_lr,
            plateau_patience=trainer.plateau_patience,
        )

    @property
    def lr(self) -> float:
        """The learning rate of the model's parameters now."""
        return float(self.optimizer.param_groups[0]["lr"])

    def after_step(self) -> None:
        if self.per_step and self.scheduler is not None:
            self.scheduler.step()

    def after_epoch(self, score: float) -> None:
        """Once per epoch, with the validation score that picks the best epoch (higher is better)."""
        if self.per_step or self.scheduler is None:
            return
        if self.name == "plateau":
            self.scheduler.step(score)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)


class EarlyStopping:
    """Stops when the best validation score is ``patience`` epochs old (``patience=0``: never)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def should_stop(self, epoch: int, best_epoch: int) -> bool:
        return self.patience > 0 and epoch - best_epoch >= self.patience

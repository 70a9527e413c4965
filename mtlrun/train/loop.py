"""The training loop: as close to a bare PyTorch loop as the features allow.

Per step it does one forward, hands the task losses to the balancer (which fills ``.grad``),
checks losses and gradients for NaN/inf, clips and steps. Nothing in the step synchronises with the
host: losses, balancer weights and the divergence flags are kept on the device and read once per
epoch (``mtlrun.train.nan_guard`` explains the delay this implies and the ``skip`` policy's cost).
The exceptions are the balancers that need a value on the host, and fp16's overflow check
(BENCHMARKS.md lists them). Mixed precision (``mtlrun.train.precision``), the learning-rate
schedule and early stopping (``mtlrun.train.lr_schedule``) plug in here.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.balancers.base import BalanceInfo, Balancer, Batch, StepContext
from mtlrun.balancers.jacobian import GradientOverflow
from mtlrun.data.base import MultiTaskDataset, present_tasks
from mtlrun.data.batch import batch_losses, batch_targets
from mtlrun.models.base import MultiTaskModel
from mtlrun.objective import primary_score
from mtlrun.train.diagnostics import Diagnostics
from mtlrun.train.evaluate import Metrics, TaskEvaluator
from mtlrun.train.lr_schedule import EarlyStopping, LRSchedule
from mtlrun.train.nan_guard import Diverged, NanGuard
from mtlrun.train.precision import Precision, scale_gradient
from mtlrun.train.progress import Progress
from mtlrun.train.schedule import ScheduleProbe, TaskSchedule

log = logging.getLogger("mtlrun")


__all__ = ["Callback", "Diverged", "EpochRecord", "FitResult", "Trainer"]


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


class Callback:
    """Hooks of one :meth:`Trainer.fit`; every hook is optional (``mtlrun.train.callbacks`` has
    the run's: run folder, checkpoints, diagnostics, tracking)."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        """After an epoch's training and validation."""

    def on_fit_end(self, trainer: Trainer, status: str, result: FitResult | None) -> None:
        """Once, when the fit stops: ``completed`` (with the result), ``diverged`` or ``interrupted``."""

    def on_exception(self, trainer: Trainer, ex: BaseException) -> None:
        """When the fit raises anything other than divergence or an interrupt (before it propagates)."""


def build_optimizer(name: str, params: list[dict[str, Any]], lr: float, weight_decay: float, momentum: float):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)


class Trainer:
    """Trains ``model`` on ``data`` with ``balancer``; the callbacks given to :meth:`fit` do
    everything around training (files, checkpoints, tracking)."""

    def __init__(
        self,
        model: MultiTaskModel,
        balancer: Balancer,
        data: MultiTaskDataset,
        *,
        optimizer: torch.optim.Optimizer,
        epochs: int,
        batch_size: int,
        grad_clip: float,
        seed: int,
        device: torch.device,
        primary: dict[str, str],
        diagnostics: Diagnostics | None = None,
        schedule: TaskSchedule | None = None,
        test_each_epoch: bool = False,
        on_nan: str = "stop",
        max_nan_skips: int = 10,
        precision: Precision | None = None,
        lr_scheduler: LRSchedule | None = None,
        early_stopping: int = 0,
    ) -> None:
        self.model, self.balancer, self.data = model, balancer, data
        self.optimizer = optimizer
        self.epochs, self.batch_size, self.grad_clip = epochs, batch_size, grad_clip
        self.device = device
        self.tasks = list(data.tasks)
        self.primary = primary
        self.directions = {t: data.tasks[t].metric_directions() for t in self.tasks}
        self.loss_fns = {t: data.tasks[t].loss for t in self.tasks}
        self.shuffle = torch.Generator().manual_seed(seed)
        self.diagnostics = diagnostics
        self.evaluator = TaskEvaluator(data.tasks, device)
        self.shared = [p for p in model.shared_parameters() if p.requires_grad]
        self.task_params = {t: [p for p in model.task_parameters(t) if p.requires_grad] for t in self.tasks}
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.balancer_params = [p for p in balancer.parameters() if p.requires_grad]
        self.step = 0
        self.start_epoch = 1
        #: evaluate the test split after every epoch (single-task baselines pick their best epoch per
        #: task); otherwise the test split is evaluated once, at the end, with the last and best weights
        self.test_each_epoch = test_each_epoch
        #: every step's losses and gradients are checked for NaN/inf (``trainer.on_nan``)
        self.nan_guard = NanGuard(self.tasks, device, on_nan, max_nan_skips)
        self.last_step_skipped = False

        # task schedule, and the closures of lookahead/bilevel balancers
        self.seed = seed
        self.schedule = schedule
        self._multipliers: dict[str, float] | None = None
        self.val_shuffle = torch.Generator().manual_seed(seed + 1)
        self._val_batches: Iterator[Batch] | None = None

        #: autocast of the forward passes and, at fp16, the gradient scaler (``grad_scaler``)
        self.precision = precision or Precision("32", device)
        self.grad_scaler = self.precision.scaler
        #: the learning-rate schedule (``state_dict``/``load_state_dict`` go into checkpoints)
        self.lr_scheduler = lr_scheduler or LRSchedule("none", optimizer, epochs=epochs, steps_per_epoch=1)
        self.early_stopping = EarlyStopping(early_stopping)
        self._scale: Tensor | None = None

    @classmethod
    def from_config(
        cls,
        trainer: Any,
        model: MultiTaskModel,
        balancer: Balancer,
        data: MultiTaskDataset,
        *,
        seed: int,
        device: torch.device,
        primary: dict[str, str],
        diagnostics: Diagnostics | None = None,
        schedule: TaskSchedule | None = None,
        test_each_epoch: bool = False,
    ) -> Trainer:
        """A trainer for a ``trainer`` config group (optimizer, lr, epochs, batch size, clipping,
        precision, learning-rate schedule, early stopping)."""
        optimizer = optimizer_for(trainer, model, balancer)
        steps = data.train.num_batches(trainer.batch_size) // max(1, balancer.batches_per_step)
        get = trainer.get if hasattr(trainer, "get") else lambda key, default=None: getattr(trainer, key, default)
        stopping = get("early_stopping", None)
        return cls(
            model,
            balancer,
            data,
            optimizer=optimizer,
            epochs=trainer.epochs,
            batch_size=trainer.batch_size,
            grad_clip=trainer.grad_clip,
            seed=seed,
            device=device,
            primary=primary,
            diagnostics=diagnostics,
            schedule=schedule,
            test_each_epoch=test_each_epoch,
            on_nan=trainer.get("on_nan", "stop"),
            max_nan_skips=trainer.get("max_nan_skips", 10),
            precision=Precision(get("precision", "32"), device),
            lr_scheduler=LRSchedule.from_config(trainer, optimizer, max(1, steps)),
            early_stopping=int(stopping.patience) if stopping is not None else 0,
        )

    def scheduled(self, losses: dict[str, Tensor]) -> dict[str, Tensor]:
        """``losses`` times the schedule's multipliers of the current epoch (unchanged without one)."""
        if self._multipliers is None:
            return losses
        return {t: losses[t] * self._multipliers[t] for t in self.tasks}

    def forward_losses(self, batch: Batch, params: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The task losses on ``batch`` under the run's precision (autocast, and at fp16 carrying the
        step's loss scale in their gradient), optionally with ``params`` substituted."""
        with self.precision.autocast():
            losses = batch_losses(self.model, self.loss_fns, batch, params)
        return {t: scale_gradient(v, self._scale) for t, v in losses.items()}

    def compute_losses(self, batch: Batch) -> dict[str, Tensor]:
        """The task losses of the current model on ``batch`` (used by multi-batch balancers)."""
        return self.scheduled(self.forward_losses(batch))

    def functional_losses(self, params: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        """The task losses on ``batch`` of the model with ``params`` substituted (lookahead methods).

        Buffers are passed as copies, so batch-norm statistics of the real model stay untouched.
        """
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}
        return self.scheduled(self.forward_losses(batch, {**buffers, **params}))

    def validation_batch(self) -> Batch:
        """The next validation batch in the trainer's own seeded order, reshuffled after each pass."""
        for _ in range(2):
            if self._val_batches is None:
                self._val_batches = self.data.val.batches(self.batch_size, shuffle=True, generator=self.val_shuffle)
            batch = next(self._val_batches, None)
            if batch is not None:
                return batch
            self._val_batches = None
        raise RuntimeError("the validation split is empty")

    def _grouped_batches(self):
        per_step = max(1, self.balancer.batches_per_step)
        group: list[Batch] = []
        for batch in self.data.train.batches(self.batch_size, shuffle=True, generator=self.shuffle):
            group.append(batch)
            if len(group) == per_step:
                yield group
                group = []
        if group and per_step == 1:
            yield group

    def train_epoch(
        self, epoch: int, progress: Progress
    ) -> tuple[Tensor, Tensor, dict[str, Tensor], int, dict[str, float]]:
        self.model.train()
        T = len(self.tasks)
        loss_sum = torch.zeros(T, device=self.device)
        weight_sum = torch.zeros(T, device=self.device)
        extra_sum: dict[str, Tensor] = {}
        extras: dict[str, float] = {}
        n = 0
        self._multipliers = self.schedule.multipliers(epoch) if self.schedule is not None else None
        for group in self._grouped_batches():
            losses, info, extra = self.training_step(group, epoch, self.optimizer.param_groups[0]["lr"])
            if self.last_step_skipped:  # trainer.on_nan=skip: the step made no update and counts for nothing
                progress.advance()
                continue
            for k, v in extra.items():
                extra_sum[k] = extra_sum.get(k, 0.0) + v.detach()
            loss_sum += torch.stack([losses[t].detach() for t in self.tasks])
            if info.weights is not None:
                weight_sum += info.weights.to(weight_sum)
            for key, value in info.extras.items():
                if isinstance(value, (int, float)):
                    extras[key] = extras.get(key, 0.0) + float(value)
            n += 1
            progress.advance()
        return loss_sum / max(n, 1), weight_sum / max(n, 1), extra_sum, n, extras

    def training_step(
        self, group: list[Batch], epoch: int, lr: float
    ) -> tuple[dict[str, Tensor], BalanceInfo, dict[str, Tensor]]:
        """One optimisation step on ``group`` (the step's batch, then any extra batches the balancer
        asked for): forward, balancer backward, clipping, optimizer step. Returns the unscheduled
        task losses, what the balancer decided, and the model's extra losses."""
        model, balancer, specs = self.model, self.balancer, self.data.tasks
        self.optimizer.zero_grad(set_to_none=True)
        self.last_step_skipped = False
        self._scale = scale = self.precision.scale()
        ctx = StepContext(
            model=model,
            shared_params=self.shared,
            task_params=self.task_params,
            epoch=epoch,
            step=self.step,
            extra_batches=group[1:],
            compute_losses=self.compute_losses,
            lr=lr,
            batch=group[0],
            validation_batch=self.validation_batch,
            functional_losses=self.functional_losses,
        )
        if self.data.has_missing_labels:  # which tasks have a label in this batch
            ctx.present = present_tasks(specs, batch_targets(group[0]), self.tasks)
        if balancer.needs_representation:  # one common input (multi-input data is refused at build)
            x, targets = group[0]
            with self.precision.autocast():
                rep = model.encode(x)
                rep_in = rep.detach().requires_grad_(True)
                outputs = model.decode(rep_in)
                losses = {t: specs[t].loss(outputs[t], targets[t]) for t in self.tasks}
            ctx.representation, ctx.representation_input = rep, rep_in
            losses = {t: scale_gradient(v, scale) for t, v in losses.items()}
        else:
            losses = self.forward_losses(group[0])
        extra = model.extra_losses()
        if extra:
            scale_gradient(torch.stack(list(extra.values())).sum(), scale).backward()
        # diagnostics, sampled steps only: J before the balancer frees the graph (unless it returns J)
        diag = self.diagnostics if self.diagnostics is not None and self.diagnostics.wants(self.step) else None
        overflow = False
        try:
            with self.precision.scaling(scale):
                own_jacobian = diag.jacobian_unless_provided(losses, ctx, balancer, self._multipliers) if diag else None
                info = balancer.backward(self.scheduled(losses), ctx)
                self.precision.match_scale(self.balancer_params, scale)
                if diag is not None:
                    jacobian = own_jacobian if own_jacobian is not None else info.jacobian
                    diag.observe(self.step, epoch, group[0], jacobian, losses)
        except GradientOverflow:  # fp16 only: skip this update and lower the scale, as a scaler does
            self.optimizer.zero_grad(set_to_none=True)
            self.precision.skip_overflow()
            info = BalanceInfo(extras={"overflow_skipped": 1})
            overflow = True
        # at fp16 the gradient scaler owns non-finite gradients (overflow: skip, lower the scale); the
        # guard checks the losses
        grads = (  # with on_nan=stop the gradient shows in the weights, checked once an epoch
            [p.grad for p in self.params if p.grad is not None]
            if self.grad_scaler is None and self.nan_guard.policy == "skip"
            else []
        )
        bad = self.nan_guard.observe(self.step, epoch, losses, grads)
        if self.nan_guard.policy == "skip" and self.nan_guard.skip(bad, self.step, epoch):
            self.optimizer.zero_grad(set_to_none=True)
            self.lr_scheduler.after_step()
            self.step += 1
            self.last_step_skipped = True
            return losses, info, extra
        if not overflow:
            clip = (lambda: model.clip_gradients(self.grad_clip)) if self.grad_clip > 0 else None
            self.precision.step(self.optimizer, clip)
        self.lr_scheduler.after_step()
        self.step += 1
        return losses, info, extra

    def fit(self, callbacks: Sequence[Callback] = ()) -> FitResult:
        """Train every epoch, calling ``callbacks`` after each and once at the end (``on_fit_end``
        with ``completed``, ``diverged`` or ``interrupted``; ``on_exception`` for anything else)."""
        try:
            result = self._fit_epochs(callbacks)
        except Diverged:
            self._notify_end(callbacks, "diverged", None)
            raise
        except KeyboardInterrupt:
            self._notify_end(callbacks, "interrupted", None)
            raise
        except Exception as ex:
            for callback in callbacks:
                callback.on_exception(self, ex)
            raise
        if not self.test_each_epoch:
            result.test_last, result.test_best = self.evaluate_test(result.best_state)
        self._notify_end(callbacks, "completed", result)
        return result

    def _notify_end(self, callbacks: Sequence[Callback], status: str, result: FitResult | None) -> None:
        for callback in callbacks:
            callback.on_fit_end(self, status, result)

    def _fit_epochs(self, callbacks: Sequence[Callback]) -> FitResult:
        records: list[EpochRecord] = []
        reference: Metrics | None = None
        best_score, best_epoch = -math.inf, 0
        best_state: dict[str, Tensor] = {}
        train_s = eval_s = 0.0
        steps_per_epoch = self.data.train.num_batches(self.batch_size) // max(1, self.balancer.batches_per_step)
        if self.schedule is not None:
            probe = ScheduleProbe(self.model, self.data, self.batch_size, self.seed, self._fresh_optimizer)
            self.schedule.prepare(probe)
        with Progress(self.epochs - self.start_epoch + 1, max(1, steps_per_epoch)) as progress:
            stopped_early = False
            for epoch in range(self.start_epoch, self.epochs + 1):
                lr = self.lr_scheduler.lr
                t0 = time.perf_counter()
                loss, weights, extra_sum, n, extras = self.train_epoch(epoch, progress)
                train_loss = dict(zip(self.tasks, loss.tolist()))  # the epoch's one host sync
                t1 = time.perf_counter()
                train_s += t1 - t0
                self.nan_guard.check(self.params)  # raises Diverged before anything of this epoch is saved
                val, val_loss = self.evaluator.evaluate(self.model, self.data.val, self.batch_size)
                test = (
                    self.evaluator.evaluate(self.model, self.data.test, self.batch_size)[0]
                    if self.test_each_epoch
                    else None
                )
                eval_s += time.perf_counter() - t1
                reference = reference or val
                relative = primary_score(val, reference, self.primary, self.directions)
                score = relative if relative is not None else -math.inf
                if score > best_score or epoch == self.start_epoch:
                    best_score, best_epoch = score, epoch
                    best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                record = EpochRecord(
                    epoch=epoch,
                    step=self.step,
                    train_loss=train_loss,
                    weights=dict(zip(self.tasks, weights.tolist())),
                    extra_losses={k: float(v) / max(n, 1) for k, v in extra_sum.items()},
                    val=val,
                    val_loss=val_loss,
                    balancer_extras=extras,
                    test=test,
                    schedule=dict(self._multipliers or {}),
                    lr=lr,
                )
                records.append(record)
                progress.epoch_done(self._epoch_line(record))
                self.lr_scheduler.after_epoch(score if math.isfinite(score) else 0.0)
                for callback in callbacks:
                    callback.on_epoch_end(self, record)
                if epoch < self.epochs and self.early_stopping.should_stop(epoch, best_epoch):
                    log.info(
                        "early stopping after epoch %d: the best validation score (epoch %d) is %d epochs old",
                        epoch,
                        best_epoch,
                        epoch - best_epoch,
                    )
                    stopped_early = True
                    break
        return FitResult(records, best_epoch, best_state, train_s, eval_s, self.step, stopped_early=stopped_early)

    def _fresh_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """A new optimizer of the run's kind and settings over ``params`` (for warm-up probes)."""
        return type(self.optimizer)(params, **self.optimizer.defaults)

    def _epoch_line(self, r: EpochRecord) -> str:
        losses = " ".join(f"{t}={v:.4f}" for t, v in r.train_loss.items())
        vals = " ".join(f"{t}/{self.primary[t]}={r.val[t][self.primary[t]]:.4f}" for t in self.tasks)
        return f"epoch {r.epoch}/{self.epochs} train loss {losses} | val {vals}"

    def evaluate_test(self, best_state: dict[str, Tensor]) -> tuple[Metrics, Metrics]:
        """Test metrics with the last weights and with the best-validation weights."""
        last, _ = self.evaluator.evaluate(self.model, self.data.test, self.batch_size)
        last_state = copy.deepcopy(self.model.state_dict())
        self.model.load_state_dict(best_state)
        best, _ = self.evaluator.evaluate(self.model, self.data.test, self.batch_size)
        self.model.load_state_dict(last_state)
        return last, best


def param_groups(model: nn.Module, balancer: Balancer, weight_decay: float) -> list[dict[str, Any]]:
    """The model's parameters, plus a balancer's own learnable weights (no weight decay)."""
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    own = [p for p in balancer.parameters() if p.requires_grad]
    if own:
        groups.append({"params": own, "weight_decay": 0.0})
    return groups


def optimizer_for(trainer: Any, model: nn.Module, balancer: Balancer) -> torch.optim.Optimizer:
    """The optimizer a ``trainer`` config asks for, over the model and the balancer's own weights."""
    return build_optimizer(
        trainer.optimizer,
        param_groups(model, balancer, trainer.weight_decay),
        trainer.lr,
        trainer.weight_decay,
        trainer.momentum,
    )

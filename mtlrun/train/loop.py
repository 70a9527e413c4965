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
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.balancers.base import BalanceInfo, Balancer, Batch, StepContext
from mtlrun.balancers.jacobian import GradientOverflow
from mtlrun.data.base import MultiTaskDataset, present_tasks
from mtlrun.data.batch import batch_losses, batch_targets
from mtlrun.models.base import MultiTaskModel
from mtlrun.train.diagnostics import Diagnostics
from mtlrun.train.distributed import DataParallel
from mtlrun.train.evaluate import Metrics, TaskEvaluator
from mtlrun.train.lr_schedule import EarlyStopping, LRSchedule
from mtlrun.train.nan_guard import Diverged, NanGuard
from mtlrun.train.optimizers import build_optimizer
from mtlrun.train.precision import Precision, scale_gradient
from mtlrun.train.progress import Progress
from mtlrun.train.records import BestEpoch, EpochPosition, EpochRecord, FitResult, record_from_dict
from mtlrun.train.schedule import ScheduleProbe, TaskSchedule
from mtlrun.train.signals import Interrupted

log = logging.getLogger("mtlrun")


__all__ = ["Callback", "Diverged", "EpochRecord", "FitResult", "Trainer"]


#: trainer attributes (set by other features) whose ``state_dict`` is checkpointed when present
OPTIONAL_STATE = ("lr_scheduler", "grad_scaler")


class Callback:
    """Hooks of one :meth:`Trainer.fit`; every hook is optional (``mtlrun.train.callbacks`` has
    the run's: run folder, checkpoints, diagnostics, tracking).

    A callback with a ``state_key`` has its :meth:`state_dict` saved in the trainer's checkpoint
    and handed back to :meth:`load_state_dict` when a run resumes, before :meth:`on_fit_start`.
    """

    #: the name of this callback's state in a checkpoint (None: it keeps no state)
    state_key: str | None = None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back the state of an interrupted run."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Once, before the first epoch trained by this fit (a resumed fit has ``trainer.resumed``)."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        """After an epoch's training and validation."""

    def on_fit_end(self, trainer: Trainer, status: str, result: FitResult | None) -> None:
        """Once, when the fit stops: ``completed`` (with the result), ``diverged`` or ``interrupted``."""

    def on_exception(self, trainer: Trainer, ex: BaseException) -> None:
        """When the fit raises anything other than divergence or an interrupt (before it propagates)."""


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
        self.model_params = [p for p in model.parameters() if p.requires_grad]
        self.step = 0
        #: the last epoch whose training and validation are done (a resumed run starts after it)
        self.epochs_done = 0
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
        self._val_pass_start: Tensor | None = None  # val_shuffle's state when the current pass began
        self._val_taken = 0  # batches taken from the current pass
        # state of the fit, kept on the trainer so a checkpoint can take it at any step boundary
        self.best = BestEpoch()
        self.records: list[EpochRecord] = []
        self.train_seconds = self.eval_seconds = 0.0
        #: wall-clock seconds of the earlier sessions of a resumed run, up to the checkpoint it resumed
        #: from, and when this session started (the run sets it to include its setup)
        self.wall_before, self.session_started = 0.0, time.perf_counter()
        self.position: EpochPosition | None = None
        self.in_step = False  # True while a step runs: the state is then not checkpointable
        #: asked after every step; True stops the fit at that step boundary (signals set it)
        self.should_stop: Callable[[], int | None] | None = None
        #: the state a resumed run restores; its callback parts are handed over in :meth:`fit`
        self.resumed: dict[str, Any] | None = None
        self._schedule_ready = False

        #: autocast of the forward passes and, at fp16, the gradient scaler (``grad_scaler``)
        self.precision = precision or Precision("32", device)
        self.grad_scaler = self.precision.scaler
        #: the learning-rate schedule (``state_dict``/``load_state_dict`` go into checkpoints)
        self.lr_scheduler = lr_scheduler or LRSchedule("none", optimizer, epochs=epochs, steps_per_epoch=1)
        self.early_stopping = EarlyStopping(early_stopping)
        self._scale: Tensor | None = None
        #: data parallel (``mtlrun.train.distributed``): each step trains this rank's shard of the
        #: global batch and the balancer sees global losses and Jacobians; None in one process
        self.dp: DataParallel | None = None

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
            on_nan=get("on_nan", "stop"),
            max_nan_skips=get("max_nan_skips", 10),
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
        if self.dp is not None:
            return self._global_losses(batch, params)
        with self.precision.autocast():
            losses = batch_losses(self.model, self.loss_fns, batch, params)
        if self._scale is None:  # no loss scaling (every precision but fp16)
            return losses
        return {t: scale_gradient(v, self._scale) for t, v in losses.items()}

    def _global_losses(self, batch: Batch, params: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Data parallel: the global batch's mean losses, from this rank's shard ``batch``."""
        assert self.dp is not None
        with self.dp.forward_rng(), self.precision.autocast():
            losses = batch_losses(self.model, self.loss_fns, batch, params)
        if self._scale is not None:
            losses = {t: scale_gradient(v, self._scale) for t, v in losses.items()}
        return self.dp.global_losses(losses, self._label_counts(batch))

    def _label_counts(self, batch: Batch) -> Tensor:
        """Per task, the labels of ``batch`` its mean loss averages over (the rows, or the labelled ones)."""
        x, targets = batch
        specs = self.data.tasks
        return torch.tensor(
            [float(specs[t].label_count(targets[t])) if specs[t].masked else float(x.shape[0]) for t in self.tasks],
            device=self.device,
        )

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
                self._val_pass_start, self._val_taken = self.val_shuffle.get_state(), 0
                self._val_batches = self.data.val.batches(self.batch_size, shuffle=True, generator=self.val_shuffle)
            batch = next(self._val_batches, None)
            if batch is not None:
                self._val_taken += 1
                return batch
            self._val_batches = None
        raise RuntimeError("the validation split is empty")

    def _grouped_batches(self, skip: int = 0):
        """The epoch's step groups in the shuffled order, without the first ``skip`` (already taken)."""
        per_step = max(1, self.balancer.batches_per_step)
        group: list[Batch] = []
        taken = 0
        for batch in self.data.train.batches(self.batch_size, shuffle=True, generator=self.shuffle):
            group.append(batch)
            if len(group) == per_step:
                if taken >= skip:
                    yield group
                taken += 1
                group = []
        if group and per_step == 1 and taken >= skip:
            yield group

    def train_epoch(
        self, epoch: int, progress: Progress
    ) -> tuple[Tensor, Tensor, dict[str, Tensor], int, dict[str, float]]:
        self.model.train()
        T = len(self.tasks)
        pos = self.position
        if pos is not None and pos.epoch == epoch:  # resumed inside this epoch: replay its order
            self.shuffle.set_state(pos.shuffle_state)
            progress.advance(pos.taken)
        else:
            zeros = torch.zeros(T, device=self.device)
            pos = EpochPosition(epoch, self.shuffle.get_state(), zeros, zeros.clone(), lr=self.lr_scheduler.lr)
            self.position = pos
        self._multipliers = self.schedule.multipliers(epoch) if self.schedule is not None else None
        self.model.on_epoch_start(epoch)
        self.refresh_partition()
        for group in self._grouped_batches(skip=pos.taken):
            losses, info, extra = self.training_step(group, epoch, self.optimizer.param_groups[0]["lr"])
            pos.taken += 1
            if self.last_step_skipped:  # trainer.on_nan=skip: the step made no update and counts for nothing
                progress.advance()
                self._stop_if_asked()
                continue
            for k, v in extra.items():
                pos.extra_sum[k] = pos.extra_sum.get(k, 0.0) + v.detach()
            pos.loss_sum += torch.stack([losses[t].detach() for t in self.tasks])
            self.nan_guard.observe_running(pos.loss_sum, self.step - 1, epoch)
            if info.weights is not None:
                pos.weight_sum += info.weights.to(pos.weight_sum)
            for key, value in info.extras.items():
                if isinstance(value, (int, float)):
                    pos.extras[key] = pos.extras.get(key, 0.0) + float(value)
            pos.steps += 1
            progress.advance()
            self._stop_if_asked()
        n = pos.steps
        return pos.loss_sum / max(n, 1), pos.weight_sum / max(n, 1), pos.extra_sum, n, pos.extras

    def refresh_partition(self) -> None:
        """Take the model's shared and task parameters afresh (a model may change them between epochs,
        see :meth:`MultiTaskModel.on_epoch_start`); balancer state sized by them restarts."""
        shared = [p for p in self.model.shared_parameters() if p.requires_grad]
        self.task_params = {t: [p for p in self.model.task_parameters(t) if p.requires_grad] for t in self.tasks}
        self.model_params = [p for p in self.model.parameters() if p.requires_grad]
        if [id(p) for p in shared] != [id(p) for p in self.shared]:
            self.shared = shared
            if self.diagnostics is not None:
                self.diagnostics.use_shared(shared)

    def _stop_if_asked(self) -> None:
        """Raise :class:`Interrupted` at this step boundary when a stop was asked for (a signal)."""
        if self.should_stop is not None:
            signum = self.should_stop()
            if self.dp is not None:  # every rank stops at the same step boundary
                signum = self.dp.largest(signum or 0)
            if signum:
                raise Interrupted(signum)

    def training_step(
        self, group: list[Batch], epoch: int, lr: float
    ) -> tuple[dict[str, Tensor], BalanceInfo, dict[str, Tensor]]:
        """One optimisation step on ``group`` (the step's batch, then any extra batches the balancer
        asked for): forward, balancer backward, clipping, optimizer step. Returns the unscheduled
        task losses, what the balancer decided, and the model's extra losses."""
        model, balancer, specs = self.model, self.balancer, self.data.tasks
        self.in_step = True
        self.optimizer.zero_grad(set_to_none=True)
        self.last_step_skipped = False
        self._scale = scale = self.precision.scale()
        dp = self.dp
        if dp is not None:  # this rank's shard of each of the step's global batches
            group = dp.shard_step(group, self.step)
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
        if dp is not None:
            ctx.collective = dp
            ctx.validation_batch = lambda: dp.shard(self.validation_batch())
        if self.data.has_missing_labels and dp is None:  # which tasks have a label in this batch
            ctx.present = present_tasks(specs, batch_targets(group[0]), self.tasks)
        if balancer.needs_representation:  # one common input (multi-input data is refused at build)
            x, targets = group[0]
            with self.precision.autocast(), dp.forward_rng() if dp is not None else nullcontext():
                rep = model.encode(x)
                rep_in = rep.detach().requires_grad_(True)
                outputs = model.decode(rep_in)
                losses = {t: specs[t].loss(outputs[t], targets[t]) for t in self.tasks}
            ctx.representation, ctx.representation_input = rep, rep_in
            losses = {t: scale_gradient(v, scale) for t, v in losses.items()}
            if dp is not None:
                losses = dp.global_losses(losses, self._label_counts(group[0]))
        else:
            losses = self.forward_losses(group[0])
        if dp is not None and self.data.has_missing_labels:  # a label anywhere in the global batch
            ctx.present = dp.present
        extra = model.extra_losses()
        if extra:
            total = scale_gradient(torch.stack(list(extra.values())).sum(), scale)
            (total * dp.fraction if dp is not None else total).backward()
        # data parallel: gradients so far are this rank's; kept apart from the balancer's (which may be global)
        stash = self._take_grads() if dp is not None and extra else None
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
        if dp is not None:
            dp.reduce_grads(self.model_params, stash)
        # at fp16 the gradient scaler owns non-finite gradients (overflow: skip, lower the scale); the
        # guard checks the losses
        # on_nan=stop reads the epoch's running loss sums instead (train_epoch), and the weights
        skip_policy = self.nan_guard.policy == "skip"
        grads = [p.grad for p in self.params if p.grad is not None] if skip_policy and self.grad_scaler is None else []
        if skip_policy and self.nan_guard.skip(
            self.nan_guard.observe(self.step, epoch, losses, grads), self.step, epoch
        ):
            self.optimizer.zero_grad(set_to_none=True)
            self.lr_scheduler.after_step()
            self.step += 1
            self.last_step_skipped = True
            self.in_step = False
            return losses, info, extra
        if not overflow:
            clip = (lambda: model.clip_gradients(self.grad_clip)) if self.grad_clip > 0 else None
            self.precision.step(self.optimizer, clip)
        self.lr_scheduler.after_step()
        self.step += 1
        self.in_step = False
        return losses, info, extra

    def _take_grads(self) -> dict[int, Tensor]:
        """The model's gradients so far, removed from ``.grad`` (data parallel, see training_step)."""
        taken = {}
        for p in self.model_params:
            if p.grad is not None:
                taken[id(p)], p.grad = p.grad, None
        return taken

    def fit(self, callbacks: Sequence[Callback] = ()) -> FitResult:
        """Train every epoch, calling ``callbacks`` after each and once at the end (``on_fit_end``
        with ``completed``, ``diverged`` or ``interrupted``; ``on_exception`` for anything else).

        A trainer given a checkpoint with :meth:`load_state_dict` continues where it stopped."""
        self.callbacks = list(callbacks)
        saved = (self.resumed or {}).get("callbacks", {})
        for callback in callbacks:
            if callback.state_key is not None and callback.state_key in saved:
                callback.load_state_dict(saved[callback.state_key])
        for callback in callbacks:
            callback.on_fit_start(self)
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
        steps_per_epoch = self.data.train.num_batches(self.batch_size) // max(1, self.balancer.batches_per_step)
        if self.schedule is not None and not self._schedule_ready:
            probe = ScheduleProbe(self.model, self.data, self.batch_size, self.seed, self._fresh_optimizer)
            self.schedule.prepare(probe)
            self._schedule_ready = True
        shows = self.dp is None or self.dp.is_writer  # one progress bar for a data-parallel run
        with Progress(self.epochs - self.epochs_done, max(1, steps_per_epoch), enabled=shows) as progress:
            stopped_early = False
            for epoch in range(self.epochs_done + 1, self.epochs + 1):
                if self._early_stop(epoch - 1):
                    stopped_early = True
                    break
                t0 = time.perf_counter()
                loss, weights, extra_sum, n, extras = self.train_epoch(epoch, progress)
                lr = self.position.lr if self.position is not None else self.lr_scheduler.lr  # at the epoch's start
                train_loss = dict(zip(self.tasks, loss.tolist()))  # the epoch's one host sync
                t1 = time.perf_counter()
                self.train_seconds += t1 - t0
                self.nan_guard.check(self.params)  # raises Diverged before anything of this epoch is saved
                val, val_loss = self.evaluator.evaluate(self.model, self.data.val, self.batch_size)
                test = (
                    self.evaluator.evaluate(self.model, self.data.test, self.batch_size)[0]
                    if self.test_each_epoch
                    else None
                )
                self.eval_seconds += time.perf_counter() - t1
                score = self.best.update(epoch, val, self.primary, self.directions, self.model)
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
                self.records.append(record)
                self.epochs_done, self.position = epoch, None
                progress.epoch_done(self._epoch_line(record))
                self.lr_scheduler.after_epoch(score if math.isfinite(score) else 0.0)
                for callback in callbacks:
                    callback.on_epoch_end(self, record)
                self._stop_if_asked()
        return FitResult(
            list(self.records),
            self.best.epoch,
            self.best.state,
            self.train_seconds,
            self.eval_seconds,
            self.step,
            stopped_early=stopped_early,
        )

    def _early_stop(self, done: int) -> bool:
        """Whether to stop after epoch ``done`` (``trainer.early_stopping``): asked before each next
        epoch, so a run resumed after that epoch stops there too."""
        if done < 1 or done >= self.epochs or not self.early_stopping.should_stop(done, self.best.epoch):
            return False
        log.info(
            "early stopping after epoch %d: the best validation score (epoch %d) is %d epochs old",
            done,
            self.best.epoch,
            done - self.best.epoch,
        )
        return True

    # ---- checkpointing ------------------------------------------------------------------

    def wall_seconds(self) -> float:
        """Wall-clock seconds of every session of the run so far (those after the last checkpoint
        of an earlier session are not counted: their epochs are trained again, and timed again)."""
        return self.wall_before + time.perf_counter() - self.session_started

    def generators(self) -> dict[str, torch.Generator]:
        """The run's own generators: training shuffle and validation-batch order."""
        return {"shuffle": self.shuffle, "val_shuffle": self.val_shuffle}

    def checkpointable(self) -> bool:
        """Whether the state is at a step boundary (not in the middle of an optimisation step)."""
        return not self.in_step

    def state_dict(self) -> dict[str, Any]:
        """Everything that decides the next step, in ``torch.load(weights_only=True)`` form: model,
        optimizer (and any LR scheduler or grad scaler), balancer, schedule, every RNG, the
        position in the epoch, the best epoch, the epochs' records, the diagnostics gathered so far
        and the state of the callbacks that keep one (the tracker's run)."""
        from mtlrun.train.checkpoint import rng_state

        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "balancer": self.balancer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else {},
            "rng": rng_state(self.generators()),
            "epoch": self.epochs_done,
            "step": self.step,
            "position": self.position.state_dict() if self.position is not None else None,
            "val_pass": {"start": self._val_pass_start, "taken": self._val_taken}
            if self._val_batches is not None
            else None,
            "best": self.best.state_dict(),
            "records": [asdict(r) for r in self.records],
            "diagnostics": self.diagnostics.state_dict() if self.diagnostics is not None else None,
            "timing": {"train_s": self.train_seconds, "eval_s": self.eval_seconds, "wall_s": self.wall_seconds()},
            "nan_skipped": self.nan_guard.skipped,
            "callbacks": {
                c.state_key: c.state_dict() for c in getattr(self, "callbacks", []) if c.state_key is not None
            },
        }
        for name in OPTIONAL_STATE:
            part = getattr(self, name, None)
            if part is not None:
                state[name] = part.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output (the callbacks' parts are restored by :meth:`fit`)."""
        from mtlrun.train.checkpoint import set_rng_state

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.balancer.load_state_dict(state["balancer"])
        for name in OPTIONAL_STATE:
            part = getattr(self, name, None)
            if part is not None and name in state:
                part.load_state_dict(state[name])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
            self._schedule_ready = True
        self.epochs_done, self.step = int(state["epoch"]), int(state["step"])
        pos = state.get("position")
        self.position = None
        if pos is not None:
            self.position = EpochPosition(
                **{
                    **pos,
                    "loss_sum": pos["loss_sum"].to(self.device),
                    "weight_sum": pos["weight_sum"].to(self.device),
                    "extra_sum": {k: v.to(self.device) for k, v in pos["extra_sum"].items()},
                }
            )
        self.best.load_state_dict(state["best"])
        self.records = [record_from_dict(r) for r in state["records"]]
        if self.diagnostics is not None and state.get("diagnostics") is not None:
            self.diagnostics.load_state_dict(state["diagnostics"])
        self.nan_guard.skipped = int(state.get("nan_skipped", 0))
        self.train_seconds = float(state["timing"]["train_s"])
        self.eval_seconds = float(state["timing"]["eval_s"])
        # a checkpoint written before wall time was kept: its training and evaluation time are the least it took
        self.wall_before = float(state["timing"].get("wall_s", self.train_seconds + self.eval_seconds))
        val_pass = state.get("val_pass")
        self._val_batches = None
        if val_pass is not None:  # replay the current validation pass up to where it was
            self.val_shuffle.set_state(val_pass["start"])
            for _ in range(int(val_pass["taken"])):
                self.validation_batch()
        set_rng_state(state["rng"], self.generators())
        # what fit still needs (not the tensors: they are in place now)
        self.resumed = {"epoch": self.epochs_done, "step": self.step, "callbacks": state.get("callbacks", {})}

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

"""What happens around training, each as one callback: the run folder, checkpoints, diagnostics
and the experiment tracker. ``Trainer.fit(callbacks=[...])`` calls them in order, so the loop
knows nothing about files, and a new concern (resume, early stopping) is one more callback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlrun.runfolder import MetricRow, RunFolder, Summary
from mtlrun.train.checkpoint import rng_state, save_checkpoint
from mtlrun.train.diagnostics import Diagnostics
from mtlrun.train.loop import Callback, EpochRecord, FitResult, Trainer


def epoch_rows(r: EpochRecord) -> list[MetricRow]:
    """The ``metrics.jsonl`` rows of one epoch: train losses, weights, extras, schedule, validation."""
    rows = [MetricRow(r.epoch, "train", t, "loss", v, step=r.step) for t, v in r.train_loss.items()]
    rows += [MetricRow(r.epoch, "train", t, "weight", v, step=r.step) for t, v in r.weights.items()]
    rows += [MetricRow(r.epoch, "train", None, k, v, step=r.step) for k, v in r.extra_losses.items()]
    rows += [MetricRow(r.epoch, "train", None, f"balancer/{k}", v, step=r.step) for k, v in r.balancer_extras.items()]
    rows += [MetricRow(r.epoch, "train", t, "schedule", v, step=r.step) for t, v in r.schedule.items()]
    if r.lr is not None:
        rows.append(MetricRow(r.epoch, "train", None, "lr", r.lr, step=r.step))
    for task, metrics in r.val.items():
        rows.append(MetricRow(r.epoch, "val", task, "loss", r.val_loss[task], step=r.step))
        rows += [MetricRow(r.epoch, "val", task, m, v, step=r.step) for m, v in metrics.items()]
    return rows


class RunFolderWriter(Callback):
    """Keeps ``metrics.jsonl`` and ``summary.json`` current after every epoch and at the end."""

    def __init__(self, folder: RunFolder, summary: Summary) -> None:
        self.folder, self.summary = folder, summary
        self.rows: list[MetricRow] = []

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        self.rows += epoch_rows(record)
        self.folder.write_metrics(self.rows)
        self.summary.epochs_completed = record.epoch
        self.summary.skipped_steps = trainer.nan_guard.skipped
        self.folder.write_summary(self.summary)

    def on_fit_end(self, trainer: Trainer, status: str, result: FitResult | None) -> None:
        if result is not None and result.test_last is not None and result.test_best is not None:
            last, best = result.epochs[-1], result.best_record
            tested = (("last", last.epoch, result.test_last), ("best", best.epoch, result.test_best))
            for which, epoch, metrics in tested:
                for task, values in metrics.items():
                    self.rows += [MetricRow(epoch, "test", task, m, v, checkpoint=which) for m, v in values.items()]
            self.folder.write_metrics(self.rows)
            self.summary.metrics = {
                "last": {"epoch": last.epoch, "val": last.val, "test": result.test_last},
                "best": {"epoch": best.epoch, "val": best.val, "test": result.test_best},
            }
        if result is not None:
            self.summary.stopped_early = result.stopped_early
        if status != "completed":
            self.summary.status = status
        self.summary.skipped_steps = trainer.nan_guard.skipped
        self.folder.write_summary(self.summary)


def schedule_state(trainer: Trainer) -> dict[str, Any]:
    """The optional checkpoint entries: ``lr_scheduler`` and ``grad_scaler`` state, when in use."""
    state: dict[str, Any] = {}
    if trainer.lr_scheduler.scheduler is not None:
        state["lr_scheduler"] = trainer.lr_scheduler.state_dict()
    if trainer.grad_scaler is not None:
        state["grad_scaler"] = trainer.grad_scaler.state_dict()
    return state


def load_schedule_state(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    """Restore what :func:`schedule_state` saved (absent entries leave the trainer as it is)."""
    if "lr_scheduler" in checkpoint:
        trainer.lr_scheduler.load_state_dict(checkpoint["lr_scheduler"])
    if "grad_scaler" in checkpoint and trainer.grad_scaler is not None:
        trainer.grad_scaler.load_state_dict(checkpoint["grad_scaler"])


class Checkpointer(Callback):
    """``checkpoints/last.pt`` every ``every`` epochs (0: only at the end), at the end, and on an
    interrupt: model, optimizer, balancer, RNG states, epoch and step, and the learning-rate
    schedule and gradient scaler when in use (``weights_only``-loadable).
    Never over a good checkpoint with weights that went non-finite: the divergence flags are read
    before every write, and a diverged run keeps its last good checkpoint."""

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every = path, every
        self.saved_epoch = -1
        self.epoch = 0

    def save(self, trainer: Trainer, epoch: int) -> None:
        if trainer.nan_guard.tripped(trainer.params):
            return
        save_checkpoint(
            self.path,
            model=trainer.model.state_dict(),
            optimizer=trainer.optimizer.state_dict(),
            balancer=trainer.balancer.state_dict(),
            rng=rng_state(trainer.shuffle),
            epoch=epoch,
            step=trainer.step,
            **schedule_state(trainer),
        )
        self.saved_epoch = epoch

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        self.epoch = record.epoch
        if self.every and record.epoch % self.every == 0:
            self.save(trainer, record.epoch)

    def on_fit_end(self, trainer: Trainer, status: str, result: FitResult | None) -> None:
        if status == "completed" and self.saved_epoch != self.epoch:
            self.save(trainer, self.epoch)
        elif status == "interrupted":
            self.save(trainer, self.epoch)


class DiagnosticsWriter(Callback):
    """Writes ``diagnostics.json`` after every epoch and when the fit stops."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        self.diagnostics.write()

    def on_fit_end(self, trainer: Trainer, status: str, result: FitResult | None) -> None:
        self.diagnostics.write()


class Tracking(Callback):
    """Mirrors the run into an experiment tracker (``logger=``)."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        self.tracker.log_epoch(record)

    def on_fit_end(self, trainer: Trainer, status: str, result: FitResult | None) -> None:
        if result is not None and result.test_last is not None and result.test_best is not None:
            self.tracker.log_test("last", result.epochs[-1].epoch, result.test_last)
            self.tracker.log_test("best", result.best_epoch, result.test_best)
        if status != "completed":  # a completed run closes after its report
            self.tracker.close(status)

    def on_exception(self, trainer: Trainer, ex: BaseException) -> None:
        self.tracker.close("failed")

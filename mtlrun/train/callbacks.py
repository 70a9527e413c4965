"""What happens around training, each as one callback: the run folder, checkpoints, diagnostics
and the experiment tracker. ``Trainer.fit(callbacks=[...])`` calls them in order, so the loop
knows nothing about files, and a new concern (resume, early stopping) is one more callback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlrun.results.run_folder import MetricRow, RunFolder, Summary
from mtlrun.train.checkpoint import save_checkpoint
from mtlrun.train.diagnostics import Diagnostics
from mtlrun.train.loop import Callback, Trainer
from mtlrun.train.records import EpochRecord, FitResult


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
        self.model_files: dict[str, str] = {}

    def write_model_files(self, trainer: Trainer) -> None:
        """The model's own files (``run_files``, e.g. learn_to_branch's ``tree.json``) when they changed."""
        for name, text in trainer.model.run_files().items():
            if self.model_files.get(name) != text:
                self.folder.write_text(name, text)
                self.model_files[name] = text

    def on_fit_start(self, trainer: Trainer) -> None:
        """A resumed run: ``metrics.jsonl`` back to the checkpoint's epochs (later ones are redone)."""
        if trainer.resumed is None:
            return
        self.rows = [row for record in trainer.records for row in epoch_rows(record)]
        self.folder.write_metrics(self.rows)
        self.summary.epochs_completed = trainer.epochs_done
        self.folder.write_summary(self.summary)

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        self.write_model_files(trainer)
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
        else:
            self.write_model_files(trainer)
        self.summary.skipped_steps = trainer.nan_guard.skipped
        self.folder.write_summary(self.summary)


class Checkpointer(Callback):
    """``checkpoints/last.pt`` (the trainer's whole state, see :meth:`Trainer.state_dict`) every
    ``every`` epochs (0: only at the end), at the end, and on an interrupt that stopped at a step
    boundary; ``checkpoints/best.pt`` (the best-validation weights, those the ``best`` test metrics
    come from) beside it; the state includes the learning-rate schedule and gradient scaler
    when in use. A diverged run, or one interrupted in the middle of a step, keeps the
    previous ``last.pt``: its state is not one to continue from (the divergence flags are read before
    every write, so weights that went non-finite never replace a good checkpoint). ``config`` (the run's, plain) is
    saved with the state so that a resume can check it is continuing the same configuration."""

    def __init__(self, last: Path, best: Path, every: int, config: dict[str, Any] | None = None) -> None:
        self.last, self.best, self.every = last, best, every
        self.config = config or {}
        self.saved_step = -1
        self.best_saved = -1

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.resumed is not None:
            self.saved_step = trainer.step

    def save(self, trainer: Trainer) -> None:
        if trainer.nan_guard.tripped(trainer.params):
            return
        if trainer.best.epoch and trainer.best.epoch != self.best_saved:
            save_checkpoint(self.best, model=trainer.best.state, epoch=trainer.best.epoch)
            self.best_saved = trainer.best.epoch
        save_checkpoint(self.last, **trainer.state_dict(), config=self.config)
        self.saved_step = trainer.step

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        if self.every and record.epoch % self.every == 0:
            self.save(trainer)

    def on_fit_end(self, trainer: Trainer, status: str, result: FitResult | None) -> None:
        if status == "completed" and (self.saved_step != trainer.step or self.best_saved != trainer.best.epoch):
            self.save(trainer)
        elif status == "interrupted" and trainer.checkpointable() and self.saved_step != trainer.step:
            self.save(trainer)


class DiagnosticsWriter(Callback):
    """Writes ``diagnostics.json`` after every epoch and when the fit stops."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.resumed is not None:  # back to the checkpoint's samples
            self.diagnostics.write()

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        self.diagnostics.write()

    def on_fit_end(self, trainer: Trainer, status: str, result: FitResult | None) -> None:
        self.diagnostics.write()


class Tracking(Callback):
    """Mirrors the run into an experiment tracker (``logger=``)."""

    state_key = "tracking"

    def __init__(self, tracker: Any, config: dict[str, Any]) -> None:
        self.tracker, self.config = tracker, config
        self.resumed = False

    def state_dict(self) -> dict[str, Any]:
        return self.tracker.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the tracker's run (the same MLflow run, TensorBoard past the checkpoint's step)."""
        self.tracker.resume(state)
        self.resumed = True

    def on_fit_start(self, trainer: Trainer) -> None:
        if not self.resumed:
            self.tracker.log_config(self.config)

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

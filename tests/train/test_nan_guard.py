"""trainer.on_nan: a non-finite loss or gradient stops the run (last good checkpoint kept) or skips the step."""

from __future__ import annotations

import math

import pytest
import torch

from mtlrun.balancers.weighting import EqualWeighting
from mtlrun.train.callbacks import Checkpointer
from mtlrun.train.checkpoint import load_checkpoint
from mtlrun.train.nan_guard import Diverged, NanGuard
from tests.train.trainer_toys import small_trainer

CPU = torch.device("cpu")


def _losses(a: float, b: float) -> dict[str, torch.Tensor]:
    return {"a": torch.tensor(a), "b": torch.tensor(b)}


def _run_epoch(guard: NanGuard, epoch: int, first_step: int, steps: list[tuple[float, float]]) -> None:
    """Feed ``guard`` an epoch's running loss sums as the trainer does (one tensor, in place)."""
    running = torch.zeros(2)
    for k, (a, b) in enumerate(steps):
        running += torch.tensor([a, b])
        guard.observe_running(running, first_step + k, epoch)


def test_stop_finds_the_first_bad_step_and_its_task():
    guard = NanGuard(["a", "b"], CPU, "stop")
    _run_epoch(guard, 1, 0, [(1.0, 2.0)] * 3)
    guard.check()  # nothing bad yet
    # epoch 2 starts at step 3; its step 4 is the first bad one, later ones stay bad
    _run_epoch(guard, 2, 3, [(1.0, 2.0), (1.0, math.nan), (math.inf, 1.0), (1.0, 1.0)])
    assert guard.tripped()
    with pytest.raises(Diverged, match=r"non-finite at step 4 \(epoch 2\)") as info:
        guard.check()
    assert info.value.divergence["step"] == 4 and info.value.divergence["epoch"] == 2
    assert info.value.divergence["tasks"] == ["b"]  # a went bad one step later


def test_stop_with_a_bad_first_step_of_an_epoch():
    guard = NanGuard(["a", "b"], CPU, "stop")
    _run_epoch(guard, 1, 0, [(1.0, 2.0)] * 2)
    guard.check()
    _run_epoch(guard, 2, 2, [(math.nan, 1.0), (1.0, 1.0)])
    with pytest.raises(Diverged, match=r"task\(s\) a became non-finite at step 2 \(epoch 2\)"):
        guard.check()


def test_a_non_finite_gradient_with_finite_losses_is_caught():
    """skip reads the gradient each step; stop finds it in the weights when the flags are read."""
    skip = NanGuard(["a", "b"], CPU, "skip", max_skips=0)
    with pytest.raises(Diverged, match="the gradient became non-finite at step 7") as info:
        skip.skip(skip.observe(7, 1, _losses(1.0, 2.0), [torch.ones(2), torch.tensor([1.0, math.inf])]), 7, 1)
    assert info.value.divergence["gradient"] is True and info.value.divergence["tasks"] == []
    stop = NanGuard(["a", "b"], CPU, "stop")
    weights = [torch.ones(2), torch.tensor([1.0, math.nan])]
    _run_epoch(stop, 3, 7, [(1.0, 2.0)])
    stop.check([torch.ones(2)])  # finite weights: nothing to report
    assert stop.tripped(weights)
    with pytest.raises(
        Diverged, match=r"gradient became non-finite \(the weights are no longer finite\) in epoch 3"
    ) as info:
        stop.check(weights)
    assert info.value.divergence["gradient"] is True and info.value.divergence["step"] is None


def test_skip_counts_and_stops_after_max_skips():
    guard = NanGuard(["a", "b"], CPU, "skip", max_skips=2)
    assert not guard.skip(guard.observe(0, 1, _losses(1.0, 1.0), []), 0, 1)
    assert guard.skip(guard.observe(1, 1, _losses(math.nan, 1.0), []), 1, 1)
    assert guard.skip(guard.observe(2, 1, _losses(math.nan, 1.0), []), 2, 1)
    assert guard.skipped == 2 and not guard.tripped()
    with pytest.raises(Diverged, match=r"after 2 skipped step\(s\)") as info:
        guard.skip(guard.observe(3, 1, _losses(1.0, math.inf), []), 3, 1)
    assert info.value.divergence["skipped_steps"] == 3 and info.value.divergence["tasks"] == ["b"]


def _poison(trainer, task: str, steps: set[int]) -> None:
    """Make ``task``'s loss NaN at the given global steps."""
    original = trainer.loss_fns[task]

    def loss(pred, target):
        value = original(pred, target)
        return value * math.nan if trainer.step in steps else value

    trainer.loss_fns[task] = loss


def test_stop_keeps_the_last_good_checkpoint(tmp_path):
    trainer = small_trainer(lambda tasks: EqualWeighting(tasks), tasks=["left", "sum"], epochs=3)
    per_epoch = trainer.data.train.num_batches(trainer.batch_size)
    _poison(trainer, "sum", {per_epoch + 2})  # in epoch 2
    path = tmp_path / "last.pt"
    with pytest.raises(Diverged) as info:
        trainer.fit([Checkpointer(path, tmp_path / "best.pt", every=1)])
    assert info.value.divergence["epoch"] == 2 and info.value.divergence["step"] == per_epoch + 2
    assert info.value.divergence["tasks"] == ["sum"]
    saved = load_checkpoint(path)
    assert saved["epoch"] == 1  # epoch 2 never overwrote it
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


def test_skip_makes_no_update_and_finishes():
    trainer = small_trainer(lambda tasks: EqualWeighting(tasks), tasks=["left", "sum"], epochs=1)
    trainer.nan_guard = NanGuard(trainer.tasks, CPU, "skip", max_skips=3)
    _poison(trainer, "left", {1, 2})
    result = trainer.fit()
    assert trainer.nan_guard.skipped == 2
    assert all(math.isfinite(v) for v in result.epochs[-1].train_loss.values())
    adam_steps = {int(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert adam_steps == {trainer.step - 2}  # the two skipped steps updated nothing


def test_skip_beyond_the_limit_diverges():
    trainer = small_trainer(lambda tasks: EqualWeighting(tasks), tasks=["left", "sum"], epochs=1)
    trainer.nan_guard = NanGuard(trainer.tasks, CPU, "skip", max_skips=1)
    _poison(trainer, "left", {1, 3})
    with pytest.raises(Diverged, match="trainer.max_nan_skips=1"):
        trainer.fit()

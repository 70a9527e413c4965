"""Trainer.state_dict / load_state_dict: a fit stopped between two steps of an epoch and continued
by a new trainer gives exactly the records and test metrics of the uninterrupted fit."""

from __future__ import annotations

import io
import signal
from dataclasses import asdict

import pytest
import torch

from mtlrun.balancers import BALANCERS
from mtlrun.train.signals import Interrupted
from tests.train.trainer_toys import small_trainer


def stop_after(steps: int):
    calls = iter(range(10**6))
    return lambda: signal.SIGTERM if next(calls) == steps - 1 else None


@pytest.mark.parametrize("balancer", ["famo", "gradvac"])
def test_a_fit_stopped_mid_epoch_continues_exactly(balancer):
    def make(tasks):
        return BALANCERS.build(balancer, {}, tasks=tasks)

    whole = small_trainer(make, epochs=2).fit()
    first = small_trainer(make, epochs=2)
    first.should_stop = stop_after(3)
    with pytest.raises(Interrupted) as stopped:
        first.fit()
    assert stopped.value.exit_code == 143 and first.step == 3 and first.checkpointable()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # only tensors and plain containers
    assert state["position"]["steps"] == 3 and state["epoch"] == 0
    second = small_trainer(make, epochs=2)
    second.load_state_dict(state)
    result = second.fit()
    assert [asdict(r) for r in result.epochs] == [asdict(r) for r in whole.epochs]
    assert result.test_best == whole.test_best and result.test_last == whole.test_last
    assert result.best_epoch == whole.best_epoch


def test_the_learning_rate_schedule_continues_exactly_mid_epoch():
    from mtlrun.train.lr_schedule import LRSchedule

    def make(tasks):
        return BALANCERS.build("ew", {}, tasks=tasks)

    def trainer():
        t = small_trainer(make, epochs=3)
        steps = t.data.train.num_batches(t.batch_size)
        t.lr_scheduler = LRSchedule("warmup_cosine", t.optimizer, epochs=3, steps_per_epoch=steps, warmup_epochs=1)
        return t

    whole = trainer().fit()
    first = trainer()
    first.should_stop = stop_after(5)
    with pytest.raises(Interrupted):
        first.fit()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = trainer()
    second.load_state_dict(torch.load(buffer, weights_only=True))
    result = second.fit()
    assert [r.lr for r in result.epochs] == [r.lr for r in whole.epochs]
    assert [asdict(r) for r in result.epochs] == [asdict(r) for r in whole.epochs]
    assert result.test_best == whole.test_best

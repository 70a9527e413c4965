"""Learning-rate schedules, early stopping, and their place in checkpoints and the baseline key."""

from __future__ import annotations

import json

import pytest
import torch

from mtlrun.results.baseline_cache import baseline_key, baseline_settings
from mtlrun.train.lr_schedule import EarlyStopping, LRSchedule
from tests.conftest import TINY_SYNTHETIC


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _run(schedule: LRSchedule, epochs: int, steps: int, scores: list[float] | None = None) -> list[float]:
    """The learning rate at the start of every epoch, stepping as the trainer does."""
    seen = []
    for epoch in range(epochs):
        seen.append(schedule.lr)
        for _ in range(steps):
            schedule.optimizer.step()
            schedule.after_step()
        schedule.after_epoch(scores[epoch] if scores else 0.0)
    seen.append(schedule.lr)
    return seen


def test_cosine_anneals_per_step_to_min_lr_over_the_run() -> None:
    schedule = LRSchedule("cosine", _optimizer(), epochs=4, steps_per_epoch=5, min_lr=0.1)
    lrs = _run(schedule, 4, 5)
    assert lrs[0] == 1.0 and lrs[-1] == pytest.approx(0.1)
    assert lrs[2] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the steps: half-way down
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_warmup_cosine_rises_then_falls() -> None:
    schedule = LRSchedule("warmup_cosine", _optimizer(), epochs=5, steps_per_epoch=4, warmup_epochs=1)
    lrs = _run(schedule, 5, 4)
    assert lrs[0] < 0.5 and lrs[1] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9)


def test_step_decays_per_epoch_and_plateau_on_the_validation_score() -> None:
    step = LRSchedule("step", _optimizer(), epochs=5, steps_per_epoch=3, step_size=2, gamma=0.5)
    assert _run(step, 5, 3) == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
    plateau = LRSchedule("plateau", _optimizer(), epochs=5, steps_per_epoch=2, gamma=0.5, plateau_patience=1)
    lrs = _run(plateau, 5, 2, scores=[0.1, 0.2, 0.2, 0.2, 0.2])
    assert lrs[:3] == [1.0, 1.0, 1.0] and lrs[-1] < 1.0


def test_none_leaves_the_learning_rate() -> None:
    schedule = LRSchedule("none", _optimizer(0.3), epochs=3, steps_per_epoch=2)
    assert _run(schedule, 3, 2) == [0.3] * 4 and schedule.state_dict() == {}


def test_early_stopping_counts_epochs_since_the_best() -> None:
    assert not EarlyStopping(0).should_stop(50, 1)
    stopping = EarlyStopping(3)
    assert not stopping.should_stop(4, 2) and stopping.should_stop(5, 2)


def test_a_schedule_state_round_trips_through_weights_only_load(tmp_path) -> None:
    schedule = LRSchedule("warmup_cosine", _optimizer(), epochs=4, steps_per_epoch=3, warmup_epochs=1)
    _run(schedule, 2, 3)
    torch.save(schedule.state_dict(), tmp_path / "s.pt")
    fresh = LRSchedule("warmup_cosine", _optimizer(), epochs=4, steps_per_epoch=3, warmup_epochs=1)
    fresh.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    fresh.optimizer.param_groups[0]["lr"] = schedule.lr  # the optimizer's own state travels separately
    for _ in range(3):
        schedule.optimizer.step()
        schedule.after_step()
        fresh.optimizer.step()
        fresh.after_step()
    assert fresh.lr == pytest.approx(schedule.lr)


def _key(**trainer) -> str:
    base = {"epochs": 2, "lr": 0.001, "device": "cpu", **trainer}
    return baseline_key(baseline_settings({"name": "synthetic"}, "t1", "mae", {"name": "mlp"}, base, 0))


def test_the_baseline_key_includes_the_new_keys_only_when_switched_on() -> None:
    old = _key()
    off = {
        "precision": "32",
        "compile": True,
        "threads": "4",
        "scheduler": "none",
        "warmup_epochs": 0,
        "step_size": 10,
        "gamma": 0.1,
        "min_lr": 0.0,
        "plateau_patience": 5,
        "early_stopping": {"patience": 0},
    }
    assert _key(**off) == old  # caches written before these keys existed stay valid
    assert _key(**{**off, "scheduler": "cosine"}) != old
    assert _key(**{**off, "scheduler": "cosine", "min_lr": 0.01}) != _key(**{**off, "scheduler": "cosine"})
    assert _key(**{**off, "early_stopping": {"patience": 3}}) != old
    assert _key(**{**off, "precision": "bf16"}) != old


def test_cosine_with_early_stopping_end_to_end(cli) -> None:
    # updates far below fp32 resolution: every epoch scores exactly as the first, which stays the best
    sgd = ["trainer.optimizer=sgd", "trainer.momentum=0", "trainer.lr=1e-30"]
    args = [*TINY_SYNTHETIC, "trainer.epochs=6", *sgd, "report.baselines=false"]
    result = cli(*args, "trainer.scheduler=cosine", "trainer.early_stopping.patience=1")
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["stopped_early"] is True and summary["epochs_completed"] == 2
    folder = result.run_dirs()[-1]
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["value"] for r in rows if r["metric"] == "lr"]
    assert lrs[0] == 1e-30 and all(a > b for a, b in zip(lrs, lrs[1:]))
    checkpoint = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["lr_scheduler"]["last_epoch"] == checkpoint["step"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.scheduler=linear", "trainer.scheduler=linear is not valid"),
        ("trainer.early_stopping.patience=-1", "trainer.early_stopping.patience=-1 must be >= 0"),
        ("trainer.gamma=0", "trainer.gamma=0.0 must be in (0, 1]"),
    ],
)
def test_bad_schedule_keys_are_one_line_errors(cli, override: str, message: str) -> None:
    result = cli(*TINY_SYNTHETIC, override)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


def test_checkpoint_entries_restore_the_schedule_and_the_scaler() -> None:
    from mtlrun.balancers.weighting import EqualWeighting
    from tests.train.trainer_toys import small_trainer

    def trainer(scaler: bool = True):
        t = small_trainer(lambda tasks: EqualWeighting(tasks), tasks=["left", "sum"], epochs=4)
        t.lr_scheduler = LRSchedule("step", t.optimizer, epochs=4, steps_per_epoch=2, step_size=1, gamma=0.5)
        t.grad_scaler = torch.amp.GradScaler("cpu", init_scale=1024.0) if scaler else None
        return t

    done = trainer()
    _run(done.lr_scheduler, 2, 2)
    done.grad_scaler.scale(torch.ones(()))
    done.grad_scaler.update(8.0)
    state = done.state_dict()
    assert {"lr_scheduler", "grad_scaler"} <= set(state)
    fresh = trainer()
    fresh.load_state_dict(state)
    assert fresh.lr_scheduler.scheduler.last_epoch == 2 and fresh.grad_scaler.get_scale() == 8.0
    assert "grad_scaler" not in trainer(scaler=False).state_dict()


def test_a_schedule_option_the_chosen_schedule_does_not_read_is_refused(cli) -> None:
    result = cli(*TINY_SYNTHETIC, "trainer.warmup_epochs=2")
    assert result.code == 2 and "Traceback" not in result.err
    assert "trainer.warmup_epochs=2 does nothing with trainer.scheduler=none" in result.err
    assert "trainer.scheduler=warmup_cosine" in result.err

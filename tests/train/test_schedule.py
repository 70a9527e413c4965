"""Task schedules: multipliers, their effect on the gradients, the difficulty probe, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from mtlrun.balancers.weighting import EqualWeighting
from mtlrun.data.base import MultiTaskDataset, TensorSplit
from mtlrun.data.tasks import regression_task
from mtlrun.errors import ConfigError
from mtlrun.models import ARCHS, EncoderSpec
from mtlrun.train.schedule import Curriculum, NoSchedule, ScheduleProbe
from tests.conftest import TINY
from tests.train.trainer_toys import small_trainer

TASKS = ["left", "right", "sum", "parity"]
FAST = [*TINY, "report.baselines=false"]


def test_no_schedule_scales_nothing():
    assert NoSchedule(TASKS).multipliers(1) is None


def test_start_epochs_zero_a_task_until_it_enters():
    schedule = Curriculum(TASKS, start_epochs={"sum": 2})
    assert schedule.multipliers(1) == {"left": 1.0, "right": 1.0, "sum": 0.0, "parity": 1.0}
    assert schedule.multipliers(2)["sum"] == 1.0


def test_ramp_gives_linear_intermediate_multipliers():
    schedule = Curriculum(TASKS, start_epochs={"sum": 3, "parity": 2}, ramp_epochs=4)
    assert [schedule.multipliers(e)["sum"] for e in range(1, 9)] == [0, 0, 0.25, 0.5, 0.75, 1, 1, 1]
    assert [schedule.multipliers(e)["parity"] for e in range(1, 4)] == [0, 0.25, 0.5]
    assert all(schedule.multipliers(e)["left"] == 1.0 for e in range(1, 5))  # present from the start: no ramp


@pytest.mark.parametrize(
    "options, key",
    [
        ({"start_epochs": {"nope": 2}}, "schedule.start_epochs"),
        ({"start_epochs": {"sum": 0}}, "schedule.start_epochs.sum"),
        ({"start_epochs": {t: 2 for t in TASKS}}, "schedule.start_epochs"),
        ({"ramp_epochs": -1}, "schedule.ramp_epochs"),
        ({"order": "difficulty", "start_epochs": {"sum": 2}}, "schedule.start_epochs"),
        ({"order": "difficulty", "warmup_steps": 0}, "schedule.warmup_steps"),
    ],
)
def test_bad_options_are_config_errors(options, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Curriculum(TASKS, **options)


class Recorder(EqualWeighting):
    """Equal weighting that records the losses it receives and the gradient each task's head gets."""

    def __init__(self, tasks):
        super().__init__(tasks)
        self.records: list[tuple[int, dict[str, float], dict[str, float]]] = []

    def backward(self, losses, ctx):
        info = super().backward(losses, ctx)
        head_grads = {
            t: float(sum(p.grad.abs().sum() for p in ctx.task_params[t] if p.grad is not None)) for t in self.tasks
        }
        self.records.append((ctx.epoch, {t: float(v.detach()) for t, v in losses.items()}, head_grads))
        return info


def test_a_task_that_has_not_entered_contributes_no_gradient():
    trainer = small_trainer(Recorder, epochs=1, schedule=Curriculum(TASKS, start_epochs={"sum": 2}))
    sum_head = {n: p.detach().clone() for n, p in trainer.model.heads["sum"].named_parameters()}
    left_head = {n: p.detach().clone() for n, p in trainer.model.heads["left"].named_parameters()}
    trainer.fit()
    epoch1 = trainer.balancer.records
    assert epoch1 and all(losses["sum"] == 0.0 and grads["sum"] == 0.0 for _, losses, grads in epoch1)
    assert all(grads["left"] > 0 for _, _, grads in epoch1)
    for n, p in trainer.model.heads["sum"].named_parameters():
        torch.testing.assert_close(p.detach(), sum_head[n])  # Adam with zero gradients leaves it as it was
    assert any(not torch.equal(p.detach(), left_head[n]) for n, p in trainer.model.heads["left"].named_parameters())
    # the same shared gradient as training without the sum task at all
    batch = next(trainer.data.train.batches(trainer.batch_size))
    trainer.model.zero_grad()
    sum(trainer.scheduled(trainer.compute_losses(batch)).values()).backward()
    with_schedule = [p.grad.clone() for p in trainer.shared]
    trainer.model.zero_grad()
    raw = trainer.compute_losses(batch)
    (raw["left"] + raw["right"] + raw["parity"]).backward()
    for scheduled_grad, p in zip(with_schedule, trainer.shared):
        torch.testing.assert_close(scheduled_grad, p.grad)


def probe_dataset() -> MultiTaskDataset:
    """'easy': a constant target (a bias learns it at once); 'hard': noise no input explains."""
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorSplit:
        x = torch.randn(n, 4, generator=g)
        return TensorSplit(x, {"easy": torch.full((n,), 3.0), "hard": torch.randn(n, generator=g)})

    tasks = {t: regression_task(t) for t in ("easy", "hard")}
    return MultiTaskDataset(tasks, split(256), split(64), split(64), (4,), "mlp")


def test_difficulty_order_puts_the_easiest_task_first_and_leaves_the_run_rng_alone():
    data = probe_dataset()
    spec = EncoderSpec(name="mlp", input_shape=(4,), options={"hidden": [8]})
    model = ARCHS.build("hps", {}, encoder=spec, tasks=[data.tasks["hard"], data.tasks["easy"]])
    probe = ScheduleProbe(model, data, 32, 0, lambda params: torch.optim.Adam(params, lr=0.05))
    schedule = Curriculum(["hard", "easy"], order="difficulty", stagger=2, warmup_steps=20)
    torch.manual_seed(123)
    schedule.prepare(probe)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))
    assert schedule.difficulty["easy"] > schedule.difficulty["hard"]
    assert schedule.start == {"easy": 1, "hard": 3}
    assert schedule.multipliers(2) == {"hard": 0.0, "easy": 1.0}


def schedule_rows(result) -> dict[tuple[int, str], float]:
    rows = [json.loads(line) for line in (result.run_dirs()[-1] / "metrics.jsonl").read_text().splitlines()]
    return {(r["epoch"], r["task"]): r["value"] for r in rows if r["metric"] == "schedule"}


def test_curriculum_composes_with_equal_weighting_through_the_cli(cli):
    result = cli("schedule=curriculum", "schedule.start_epochs={sum:2}", "balancer=ew", *FAST)
    assert result.code == 0, result.err
    assert result.summary()["status"] == "completed"
    rows = schedule_rows(result)
    assert rows[(1, "sum")] == 0.0 and rows[(2, "sum")] == 1.0
    assert rows[(1, "left")] == rows[(2, "left")] == 1.0


def test_curriculum_composes_with_a_gradient_balancer_through_the_cli(cli):
    result = cli(
        "schedule=curriculum", "schedule.start_epochs={parity:2}", "schedule.ramp_epochs=2", "balancer=pcgrad", *FAST
    )
    assert result.code == 0, result.err
    assert result.summary()["status"] == "completed"
    rows = schedule_rows(result)
    assert rows[(1, "parity")] == 0.0 and rows[(2, "parity")] == 0.5


def test_difficulty_curriculum_through_the_cli(cli):
    result = cli(
        "schedule=curriculum", "schedule.order=difficulty", "schedule.stagger=1", "schedule.warmup_steps=5", *FAST
    )
    assert result.code == 0, result.err
    rows = schedule_rows(result)
    assert sorted(rows[(1, t)] for t in TASKS) == [0.0, 0.0, 0.0, 1.0]  # only the easiest task in epoch 1
    assert sorted(rows[(2, t)] for t in TASKS) == [0.0, 0.0, 1.0, 1.0]


def test_bad_schedule_option_is_a_one_line_error(cli):
    result = cli("schedule=curriculum", "schedule.start_epochs={nope:2}", *FAST)
    assert result.code == 2
    assert "schedule.start_epochs" in result.err and len(result.err.strip().splitlines()) == 1


def test_auto_stagger_spreads_entries_over_the_first_half_of_training():
    assert Curriculum(TASKS, epochs=2).entry_epochs(4) == [1, 2, 2, 2]
    assert Curriculum(TASKS, epochs=20).entry_epochs(4) == [1, 5, 8, 11]
    assert Curriculum(TASKS, epochs=20, stagger=3).entry_epochs(4) == [1, 4, 7, 10]
    assert Curriculum(TASKS).order == "difficulty"  # order=auto without entry epochs
    assert Curriculum(TASKS, start_epochs={"sum": 2}).order == "epochs"


def test_curriculum_in_a_single_epoch_is_refused():
    with pytest.raises(ConfigError, match="trainer.epochs=1"):
        Curriculum(TASKS, epochs=1)


def epoch_losses(result) -> dict[str, float]:
    rows = [json.loads(line) for line in (result.run_dirs()[-1] / "metrics.jsonl").read_text().splitlines()]
    return {r["task"]: r["value"] for r in rows if r["metric"] == "loss" and r["split"] == "train" and r["epoch"] == 1}


@pytest.mark.slow
def test_curriculum_with_its_defaults_changes_the_first_epoch(cli):
    none = cli("schedule=none", *FAST, "trainer.epochs=2")
    assert none.code == 0, none.err
    first = epoch_losses(none)  # read before the second run: both share the working folder
    curriculum = cli("schedule=curriculum", *FAST, "trainer.epochs=2")
    assert curriculum.code == 0, curriculum.err
    assert sorted(schedule_rows(curriculum)[(1, t)] for t in TASKS) == [0.0, 0.0, 0.0, 1.0]
    scheduled = epoch_losses(curriculum)
    assert set(first) == set(TASKS)
    assert any(abs(first[t] - scheduled[t]) > 1e-6 for t in TASKS), (first, scheduled)

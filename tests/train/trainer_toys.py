"""A small real Trainer (MultiDigits, MLP encoder, hps) for tests of the trainer's contracts."""

from __future__ import annotations

import torch

from mtlrun.balancers.base import Balancer
from mtlrun.data import DATASETS
from mtlrun.models import ARCHS, EncoderSpec
from mtlrun.train.loop import Trainer, param_groups
from mtlrun.train.optimizers import build_optimizer
from mtlrun.train.schedule import TaskSchedule


def small_trainer(
    make_balancer, *, tasks: list[str] | None = None, epochs: int = 1, schedule: TaskSchedule | None = None
) -> Trainer:
    """``make_balancer(tasks) -> Balancer``; the data are MultiDigits restricted to ``tasks``."""
    full = DATASETS.build("multi_digits", {})
    tasks = tasks or list(full.tasks)
    data = full.select(tasks)
    torch.manual_seed(0)
    spec = EncoderSpec(name="mlp", input_shape=tuple(data.input_shape), options={"hidden": [16]})
    model = ARCHS.build("hps", {}, encoder=spec, tasks=[data.tasks[t] for t in tasks])
    balancer: Balancer = make_balancer(tasks)
    optimizer = build_optimizer("adam", param_groups(model, balancer, 0.0), 1e-2, 0.0, 0.9)
    return Trainer(
        model,
        balancer,
        data,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=128,
        grad_clip=0.0,
        seed=0,
        device=torch.device("cpu"),
        primary={t: data.tasks[t].primary for t in tasks},
        schedule=schedule,
    )

"""Tiny encoders, tasks and batches for architecture unit tests."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mtlrun.data.base import TaskSpec
from mtlrun.data.tasks import binary_task, classification_task, regression_task
from mtlrun.models import ARCHS, EncoderSpec, MultiTaskModel

IMAGE = (1, 10, 16)
#: both encoders with three stages, so stage indices mean the same for each
ENCODER_OPTIONS = {"mlp": {"hidden": [12, 10, 8]}, "cnn": {"channels": [4, 6], "hidden": 8}}


def tasks() -> list[TaskSpec]:
    return [classification_task("a", 3), regression_task("b"), binary_task("c")]


def encoder(name: str) -> EncoderSpec:
    return EncoderSpec(name=name, input_shape=IMAGE, options=ENCODER_OPTIONS[name])


def build(arch: str, encoder_name: str = "mlp", seed: int = 0, **options: Any) -> MultiTaskModel:
    torch.manual_seed(seed)
    return ARCHS.build(arch, options, encoder=encoder(encoder_name), tasks=tasks())


def batch(n: int = 8, seed: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *IMAGE, generator=g)
    targets = {
        "a": torch.randint(0, 3, (n,), generator=g),
        "b": torch.randn(n, generator=g),
        "c": torch.randint(0, 2, (n,), generator=g),
    }
    return x, targets


def losses(model: MultiTaskModel, x: Tensor, targets: dict[str, Tensor]) -> dict[str, Tensor]:
    outputs = model(x)
    specs = {t.name: t for t in tasks()}
    return {t: specs[t].loss(outputs[t], targets[t]) for t in model.task_names}


def funnel_tasks() -> list[TaskSpec]:
    """A click, a conversion (both binary) and a regression task: the tasks of ESMM and AITM."""
    return [binary_task("click"), binary_task("buy"), regression_task("b")]


def build_funnel(arch: str, encoder_name: str = "mlp", seed: int = 0, **options: Any) -> MultiTaskModel:
    torch.manual_seed(seed)
    return ARCHS.build(arch, options, encoder=encoder(encoder_name), tasks=funnel_tasks())


def funnel_batch(n: int = 8, seed: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *IMAGE, generator=g)
    click = torch.randint(0, 2, (n,), generator=g).float()
    click[:2] = torch.tensor([0.0, 1.0])
    buy = click * torch.randint(0, 2, (n,), generator=g).float()
    buy[1] = 1.0
    return x, {"click": click, "buy": buy, "b": torch.randn(n, generator=g)}


def funnel_losses(model: MultiTaskModel, x: Tensor, targets: dict[str, Tensor]) -> dict[str, Tensor]:
    outputs = model(x)
    specs = {t.name: t for t in funnel_tasks()}
    return {t: specs[t].loss(outputs[t], targets[t]) for t in model.task_names}

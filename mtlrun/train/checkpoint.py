"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors and plain containers only."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from mtlrun.outputs import save_torch


def rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    state["python"] = list(random.getstate()[1])
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_checkpoint(path: Path, **parts: Any) -> None:
    """Write ``parts`` (model, optimizer, balancer state dicts, rng, epoch, ...) atomically."""
    save_torch(path, parts)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)

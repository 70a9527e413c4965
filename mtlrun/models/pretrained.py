"""Encoder weights from a local file (``encoder.weights=PATH``); nothing is downloaded.

A file holds a state dict, either an mtlrun encoder's own (keys ``stages.<i>....``) or a
torchvision-style ResNet checkpoint (keys ``conv1.``, ``bn1.``, ``layer1.`` .. ``layer4.``, ``fc.``),
possibly wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``. ResNet keys are renamed onto
the stages (stem = stage 0, ``layerK`` = stage K); the classifier ``fc`` is dropped.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from mtlrun.errors import ConfigError


@lru_cache(maxsize=4)
def _read(path: str, mtime: float) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as ex:
        raise ConfigError(f"encoder.weights={path}: not a readable torch state dict ({type(ex).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"encoder.weights={path}: holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}


def torchvision_to_stages(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision ResNet keys onto a staged encoder's (stem = stage 0, layerK = stage K)."""
    renamed = {}
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        match = re.match(r"layer(\d)\.(.*)", key)
        renamed[f"stages.{match.group(1)}.{match.group(2)}" if match else f"stages.0.{key}"] = value
    return renamed


def load_weights(encoder: nn.Module, weights: str) -> None:
    """Load ``weights`` into ``encoder``; every parameter and buffer must match in name and shape."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"encoder.weights={weights}: no such file")
    state = _read(str(path.resolve()), path.stat().st_mtime)
    if not any(k.startswith("stages.") for k in state):
        state = torchvision_to_stages(state)
    own = encoder.state_dict()
    # old torchvision checkpoints predate batch norm's num_batches_tracked buffer: keep ours
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        problems = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else ""]
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "")
        problems.append(
            f"{len(wrong)} of another shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} vs "
            f"{tuple(own[wrong[0]].shape)})"
            if wrong
            else ""
        )
        detail = "; ".join(p for p in problems if p)
        raise ConfigError(f"encoder.weights={weights} does not fit this encoder: {detail}")
    encoder.load_state_dict({k: state.get(k, own[k]) for k in own})

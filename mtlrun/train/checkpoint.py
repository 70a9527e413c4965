"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors and plain containers only.

A checkpoint that is missing, truncated (a copy cut short), or foreign (another program's file, a
pickle of arbitrary objects) is refused with one :class:`CheckpointError` line naming the file and
what is wrong; the file itself is only read.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from mtlrun.errors import ConfigError
from mtlrun.outputs import save_torch

#: what every checkpoint of mtlrun holds (``Checkpointer.save``)
REQUIRED = ("model", "optimizer", "epoch")


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used (one line, naming the file)."""


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
    """The parts saved by :func:`save_checkpoint`; :class:`CheckpointError` if ``path`` is not one."""
    import pickle
    import warnings

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol is reported below, not warned about
            warnings.simplefilter("ignore")
            parts = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused an object: not a file mtlrun wrote
        raise CheckpointError(
            f"checkpoint {path}: holds objects other than tensors and plain containers (not an mtlrun checkpoint)"
        ) from None
    except Exception as ex:  # the reader fails in many ways on a cut-short or foreign file
        first = str(ex).splitlines()[0].split(". ")[0] if str(ex) else ""
        reason = type(ex).__name__
        if first and isinstance(ex, (RuntimeError, OSError)):
            reason += f": {first}"
        raise CheckpointError(f"checkpoint {path}: truncated or corrupt ({reason[:160]})") from None
    if not isinstance(parts, dict):
        raise CheckpointError(f"checkpoint {path}: holds a {type(parts).__name__}, not an mtlrun checkpoint")
    missing = [k for k in REQUIRED if k not in parts]
    if missing:
        raise CheckpointError(f"checkpoint {path}: not an mtlrun checkpoint (no {', '.join(missing)})")
    return parts

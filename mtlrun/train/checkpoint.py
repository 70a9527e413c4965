"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors and plain containers only.

A checkpoint that is missing, truncated (a copy cut short), or foreign (another program's file, a
pickle of arbitrary objects) is refused with one :class:`CheckpointError` line naming the file and
what is wrong; the file itself is only read.

The random generators a run draws from are captured here in that form (python's and numpy's
states as tensors and lists), so that a resumed run draws exactly what the uninterrupted one would.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlrun.errors import ConfigError
from mtlrun.results.atomic import save_torch

#: what every checkpoint of mtlrun holds (``Checkpointer.save``)
REQUIRED = ("model", "optimizer", "epoch")


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used (one line, naming the file)."""


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG of the process (python, numpy, torch, cuda) plus the run's own ``generators``."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Restore what :func:`rng_state` captured (cuda only where present now and then)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    for name, g in generators.items():
        g.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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

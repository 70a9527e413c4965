"""The single-task baseline cache: one JSON file per baseline, keyed by exactly its settings.

Training writes it (``mtlrun.train.baselines``); the report reads it. Kept free of torch and of
the training code so that ``mtlrun.report`` can read baselines without importing either.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtlrun.outputs import write_json

#: trainer keys that do not change what a baseline learns
_TRAINER_IGNORED = ("device", "checkpoint_every")
#: bump when the meaning of a cached baseline changes
CACHE_VERSION = 1


def baseline_settings(
    dataset: Mapping[str, Any],
    task: str,
    primary: str,
    encoder: Mapping[str, Any],
    trainer: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Exactly the settings that define task ``task``'s single-task baseline."""
    return {
        "version": CACHE_VERSION,
        "dataset": dict(dataset),
        "task": task,
        "primary": primary,
        "encoder": dict(encoder),
        "head": "default",
        "trainer": {k: v for k, v in dict(trainer).items() if k not in _ignored(trainer)},
        "seed": seed,
    }


def _ignored(trainer: Mapping[str, Any]) -> tuple[str, ...]:
    """Trainer keys left out of a baseline's settings: the NaN policy only when it is the default
    (a baseline that stops on NaN never records one), so keys from before it existed stay valid."""
    if trainer.get("on_nan", "stop") == "stop":
        return (*_TRAINER_IGNORED, "on_nan", "max_nan_skips")
    return _TRAINER_IGNORED


def baseline_key(settings: Mapping[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class BaselineCache:
    """Baselines as ``<root>/<key>.json`` files, each written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if record.get("status") == "completed" else None

    def store(self, key: str, record: Mapping[str, Any]) -> None:
        write_json(self.path(key), dict(record))

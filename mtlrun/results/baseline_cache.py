"""The single-task baseline cache: one JSON file per baseline, keyed by exactly its settings.

Training writes it (``mtlrun.train.baselines``); the report reads it. Kept free of torch and of
the training code so that ``mtlrun.report`` can read baselines without importing either.

Runs share the cache (sweeps with parallel workers, two shells, array jobs on one filesystem), so
each file is written atomically (temp + rename) and training a missing baseline happens under a
per-key file lock (``.<key>.lock``, ``filelock``): the second run waits, then finds the first one's
file and reuses it, so a baseline is trained once. A cache file that is not a JSON object is
refused with one :class:`CacheFileError` line naming it; it is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from mtlrun.errors import ConfigError
from mtlrun.results.atomic import write_json
from mtlrun.results.file_modes import shared_mode

#: trainer keys that do not change what a baseline learns (baselines train in one process, on rank 0
#: of a data-parallel run)
_TRAINER_IGNORED = ("device", "checkpoint_every", "compile", "threads", "devices", "nodes", "data_parallel")
#: trainer keys that enter the key only when switched on (their "off" value), so caches written
#: before they existed stay valid
_TRAINER_OFF = {"precision": "32", "scheduler": "none", "early_stopping": {"patience": 0}}
#: the options of a learning-rate schedule, which matter only when one is on
_SCHEDULE_KEYS = ("warmup_epochs", "step_size", "gamma", "min_lr", "plateau_patience")


def trainer_settings(trainer: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer keys that define what a baseline learns (see the constants above)."""
    settings = {k: v for k, v in dict(trainer).items() if k not in _ignored(trainer)}
    for key, off in _TRAINER_OFF.items():
        if key in settings and (settings[key] == off or str(settings[key]) == str(off)):
            del settings[key]
    if "scheduler" not in settings:
        for key in _SCHEDULE_KEYS:
            settings.pop(key, None)
    return settings


#: bump when the meaning of a cached baseline changes (2: encoder=cnn's convolutions lost their bias)
CACHE_VERSION = 2


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
        "trainer": trainer_settings(trainer),
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


class CacheFileError(ConfigError):
    """A baseline cache file that cannot be read (one line, naming the file)."""


class BaselineCache:
    """Baselines as ``<root>/<key>.json`` files, each written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        """The completed baseline ``key``, or None if there is none; :class:`CacheFileError` if its
        file is corrupt (half a file, not JSON, not an object)."""
        path = self.path(key)
        if self.root.exists() and not self.root.is_dir():
            raise CacheFileError(f"report.cache_dir={self.root} is a file, not a folder; choose another folder")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as ex:
            raise CacheFileError(f"baseline cache file {path}: unreadable ({type(ex).__name__})") from None
        try:
            record = json.loads(text)
        except ValueError:
            raise CacheFileError(
                f"baseline cache file {path}: not valid JSON (corrupt or cut short); delete it to train it again"
            ) from None
        if not isinstance(record, dict):
            kind = type(record).__name__
            raise CacheFileError(f"baseline cache file {path}: holds a JSON {kind}, not a baseline record")
        return record if record.get("status") == "completed" else None

    def store(self, key: str, record: Mapping[str, Any]) -> None:
        write_json(self.path(key), dict(record))

    @contextmanager
    def locked(self, keys: Iterable[str], timeout: float = -1) -> Iterator[None]:
        """Hold the file locks of ``keys`` (in sorted order, so two runs never deadlock); another
        process asking for any of them waits until they are released."""
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        # the lock file gets the umask's mode like every cache file, so a colleague sharing the
        # cache can open it too (filelock would otherwise set its own fixed mode)
        mode = shared_mode()
        with ExitStack() as stack:
            for key in sorted(set(keys)):
                stack.enter_context(FileLock(str(self.root / f".{key}.lock"), timeout=timeout, mode=mode))
            yield

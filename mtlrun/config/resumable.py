"""Which config changes a resume allows, and the check that nothing else changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlrun.errors import ConfigError

#: config keys a resumed run may change: the resume itself, the number of epochs (to train longer)
#: and the number of data-parallel processes (the same update on any number of them)
RESUMABLE_CHANGES = ("resume", "trainer.epochs", "trainer.devices", "trainer.nodes")
#: trainer keys added with a default that keeps a run's results as before: a run saved without them resumes
DEFAULTED = {"data_parallel": "exact"}


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the keys a resume may change."""
    out = {k: v for k, v in config.items() if k != "resume"}
    if isinstance(out.get("trainer"), dict):
        out["trainer"] = {
            k: v
            for k, v in out["trainer"].items()
            if k not in ("epochs", "devices", "nodes") and DEFAULTED.get(k, object()) != v
        }
    return out


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The dotted key of the first value that differs between two plain configs (None if equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = first_difference(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
            if found is not None:
                return found
        return None
    return None if a == b else (prefix or "(config)")


def check_same_config(saved: dict[str, Any], now: dict[str, Any], folder: Path) -> None:
    """One ConfigError naming the first key in which ``now`` differs from the config ``folder`` ran
    with, apart from :data:`RESUMABLE_CHANGES`."""
    changed = first_difference(comparable_config(saved), comparable_config(now))
    if changed is not None:
        raise ConfigError(
            f"cannot resume {folder}: its config differs in '{changed}' from the one composed now; "
            f"only {', '.join(RESUMABLE_CHANGES)} may change on a resume"
        )

"""Find run folders under any path and read them safely, without torch and without unpickling.

A run folder is a folder holding ``.hydra/config.yaml``, or ``summary.json`` beside its
``metrics.jsonl`` or ``run.log``. Only JSON and YAML
are read (``json``, ``yaml.safe_load``), so comparing folders from an untrusted source is safe. A
folder that is half written (no or corrupt ``summary.json``, status still ``running``) becomes a
:class:`RunRecord` with status ``incomplete`` and a reason, never an exception.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: statuses a finished run can have; anything else is reported as incomplete
FINISHED = ("completed", "diverged", "failed", "interrupted")


@dataclass
class RunRecord:
    """What the comparison needs from one run folder."""

    path: Path
    status: str
    reason: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # flattened .hydra/config.yaml, dotted keys
    choices: dict[str, str] = field(default_factory=dict)  # group choices from .hydra/hydra.yaml
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # {task: {metric: value}}
    primary: dict[str, str] = field(default_factory=dict)
    directions: dict[str, dict[str, bool]] = field(default_factory=dict)  # True: higher is better
    delta_m: float | None = None

    @property
    def has_metrics(self) -> bool:
        return self.status == "completed" and bool(self.metrics)

    def value(self, key: str) -> Any:
        """A config value by dotted key; a group name (``arch``) gives its choice (``hps``)."""
        if key in self.choices:
            return self.choices[key]
        if key in self.config:
            return self.config[key]
        if f"{key}.name" in self.config:
            return self.config[f"{key}.name"]
        return None


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    if not isinstance(node, dict):
        return {prefix: node} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def is_run_folder(path: Path) -> bool:
    """Hydra's job config, or a summary next to the run's log or metrics (a copy of a summary
    alone, such as a tracker's artifact, is not a run)."""
    if (path / ".hydra" / "config.yaml").is_file():
        return True
    return (path / "summary.json").is_file() and any((path / n).is_file() for n in ("metrics.jsonl", "run.log"))


def find_run_folders(paths: Iterable[Path]) -> list[Path]:
    """Every run folder at or below ``paths`` (hidden folders and a run's own subfolders are skipped)."""
    found: dict[Path, None] = {}
    for root in paths:
        root = Path(root)
        if not root.is_dir():
            continue
        for folder in _walk(root):
            found.setdefault(folder.resolve(), None)
    return sorted(found)


def _walk(root: Path) -> Iterator[Path]:
    if is_run_folder(root):
        yield root
        return
    for current, dirs, _files in os.walk(root):
        here = Path(current)
        dirs.sort()
        keep = []
        for name in dirs:
            if name.startswith("."):
                continue
            child = here / name
            if is_run_folder(child):
                yield child
            else:
                keep.append(name)
        dirs[:] = keep


def _read_json(path: Path) -> tuple[Any, str | None]:
    if not path.is_file():
        return None, f"{path.name} missing"
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as ex:
        return None, f"{path.name} unreadable ({type(ex).__name__})"


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # NaN and infinities are stored as strings to keep JSON valid
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _choices(hydra_yaml: Any) -> dict[str, str]:
    try:
        choices = hydra_yaml["hydra"]["runtime"]["choices"]
    except (KeyError, TypeError):
        return {}
    if not isinstance(choices, dict):
        return {}
    return {str(k): str(v) for k, v in choices.items() if not str(k).startswith("hydra") and v is not None}


def _metrics(summary: dict[str, Any], at: str) -> dict[str, dict[str, float]]:
    try:
        table = summary["metrics"][at]["test"]
    except (KeyError, TypeError):
        return {}
    out: dict[str, dict[str, float]] = {}
    if not isinstance(table, dict):
        return out
    for task, values in table.items():
        if not isinstance(values, dict):
            continue
        numbers = {m: v for m, v in ((m, _number(v)) for m, v in values.items()) if v is not None}
        if numbers:
            out[str(task)] = numbers
    return out


def read_run(path: Path, at: str = "best") -> RunRecord:
    """Read one run folder; ``at`` picks the test metrics at the ``best`` (validation) or ``last`` epoch."""
    path = Path(path)
    config_yaml = _read_yaml(path / ".hydra" / "config.yaml")
    record = RunRecord(
        path=path,
        status="incomplete",
        config=flatten(config_yaml) if isinstance(config_yaml, dict) else {},
        choices=_choices(_read_yaml(path / ".hydra" / "hydra.yaml")),
    )
    summary, problem = _read_json(path / "summary.json")
    if problem:
        record.reason = problem
        return record
    if not isinstance(summary, dict):
        record.reason = "summary.json is not a JSON object"
        return record
    if not record.config and isinstance(summary.get("run"), dict):
        record.config = {
            f"{k}.name" if k in ("dataset", "arch", "balancer", "encoder") else k: v for k, v in summary["run"].items()
        }
    status = summary.get("status")
    if status not in FINISHED:
        record.reason = f"status {status!r} (still running, or the process was killed)"
        return record
    record.status = status
    record.reason = summary.get("error") if status != "completed" else None
    record.primary = {str(k): str(v) for k, v in (summary.get("primary") or {}).items()}
    record.directions = {
        str(t): {str(m): bool(d) for m, d in ms.items()}
        for t, ms in (summary.get("directions") or {}).items()
        if isinstance(ms, dict)
    }
    if status == "completed":
        record.metrics = _metrics(summary, at)
        if not record.metrics:
            record.status, record.reason = "incomplete", f"summary.json has no test metrics at '{at}'"
    transfer, _ = _read_json(path / "transfer.json")
    if isinstance(transfer, dict):
        delta = _number(transfer.get("delta_m"))
        record.delta_m = delta if delta is not None and math.isfinite(delta) else None
    return record


def read_runs(paths: Iterable[Path], at: str = "best") -> list[RunRecord]:
    return [read_run(folder, at) for folder in find_run_folders(paths)]

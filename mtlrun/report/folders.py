"""Find run folders under any path and read them safely, without torch and without unpickling.

A run folder is a folder holding ``.hydra/config.yaml``, or ``summary.json`` beside its
``metrics.jsonl`` or ``run.log``. Only JSON and YAML
are read (``json``, ``yaml.safe_load``), so comparing folders from an untrusted source is safe. A
folder that is half written (no or corrupt ``summary.json``, status still ``running``) becomes a
:class:`RunRecord` with status ``incomplete`` and a reason, never an exception.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mtlrun.results.run_folder import FINISHED, SUMMARY, RunFolder


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
    #: the single-task baselines' test metrics from transfer.json (pooled over its seeds): {task: {metric: value}}
    stl: dict[str, dict[str, float]] = field(default_factory=dict)

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
    return RunFolder(path).is_run()


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


def read_run(path: Path, at: str = "best") -> RunRecord:
    """Read one run folder; ``at`` picks the test metrics at the ``best`` (validation) or ``last`` epoch."""
    folder = RunFolder(path)
    config_yaml = folder.read_config()
    record = RunRecord(
        path=Path(path),
        status="incomplete",
        config=flatten(config_yaml) if config_yaml is not None else {},
        choices={k: v for k, v in folder.read_choices().items() if not k.startswith("hydra")},
    )
    summary, problem = folder.summary_or_reason()
    if summary is None:
        record.reason = problem
        return record
    if not record.config:
        named = ("dataset", "arch", "balancer", "encoder")
        record.config = {f"{k}.name" if k in named else k: v for k, v in asdict(summary.run).items()}
    if summary.status not in FINISHED:
        record.reason = f"status {summary.status!r} (still running, or the process was killed)"
        return record
    record.status = summary.status
    record.reason = summary.error if not summary.completed else None
    record.primary = {str(k): str(v) for k, v in summary.primary.items()}
    record.directions = {
        str(t): {str(m): bool(d) for m, d in ms.items()} for t, ms in summary.directions.items() if isinstance(ms, dict)
    }
    if summary.completed:
        record.metrics = summary.results(at, "test")
        if not record.metrics:
            record.status, record.reason = "incomplete", f"{SUMMARY} has no test metrics at '{at}'"
    transfer = folder.read_transfer()
    if transfer is not None:
        record.delta_m = transfer.own_delta_m
        record.stl = transfer.baseline_metrics()
    return record


def read_runs(paths: Iterable[Path], at: str = "best") -> list[RunRecord]:
    return [read_run(folder, at) for folder in find_run_folders(paths)]

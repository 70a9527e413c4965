"""Sweep jobs and baseline-cache records written by hand, as a finished run with its report inputs leaves them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mtlrun.report.negative_transfer import baseline_keys_for
from mtlrun.results.baseline_cache import BaselineCache
from mtlrun.results.run_folder import RunFolder
from tests.report.helpers import DIRECTIONS, make_run


def make_job(
    folder: Path,
    *,
    seed: int,
    acc: float,
    mae: float,
    mode: str = "MULTIRUN",
    commit: str = "c0ffee",
    overrides: tuple[str, ...] = ("dataset=synthetic",),
    affinity: float | None = None,
    **options,
) -> Path:
    """A completed run folder (tasks a and b) with Hydra's mode, its overrides and its code version."""
    make_run(folder, seed=seed, acc=acc, mae=mae, **options)
    summary = json.loads((folder / "summary.json").read_text())
    summary["run"]["tasks"] = ["a", "b"]
    summary.update(
        git_commit=commit,
        versions={"mtlrun": "0.1.0"},
        encoder={"name": "mlp", "hidden": [16]},
        parameters={"total": 1000, "shared": 800, "per_task": {"a": 100, "b": 100}},
        timings={"train_s": 4.0},
    )
    (folder / "summary.json").write_text(json.dumps(summary))
    hydra = yaml.safe_load((folder / ".hydra" / "hydra.yaml").read_text())
    hydra["hydra"]["mode"] = mode
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*overrides, f"seed={seed}"]))
    if affinity is not None:
        diagnostics = {"tasks": ["a", "b"], "affinity": {"matrix": [[0.0, affinity], [affinity, 0.0]]}}
        (folder / "diagnostics.json").write_text(json.dumps(diagnostics))
    return folder


def store_baselines(cache: BaselineCache, job: Path, acc: float, mae: float) -> None:
    """The single-task baselines of ``job``'s seed, keyed as the report looks them up."""
    folder = RunFolder(job)
    keys = baseline_keys_for(folder.read_config(), folder.read_summary())
    metrics = {"a": {"acc": acc, "f1": acc / 2}, "b": {"mae": mae}}
    for task, key in keys.items():
        cache.store(
            key,
            {
                "status": "completed",
                "task": task,
                "directions": DIRECTIONS[task],
                "metrics": {"best": {"epoch": 2, "test": metrics[task]}},
                "trained_with": {"tasks": ["a", "b"], "train_s": 3.0},
                "parameters": 900,
            },
        )

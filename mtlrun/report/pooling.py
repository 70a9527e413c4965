"""Which runs a negative-transfer report pools as seeds of one configuration, and why.

Pooling is explicit (``report.pool``): ``sweep`` (default) pools the jobs of the run's own
multirun sweep (a single run pools nothing but itself), ``folder`` every run under the launch
folder's ``outputs/`` and ``multirun/``, ``none`` nothing; ``report.pool_from`` adds folders. A
candidate is pooled only when it completed, has the same resolved configuration except the seed
(and the settings that do not change results), and was produced by the same code (git commit and
mtlrun version). Two runs of the same seed are not replicates: one is kept (the run itself, else
the newest) and the others are listed as dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlrun.report.folders import find_run_folders, flatten
from mtlrun.results.run_folder import SUMMARY, RunFolder, Summary

#: dotted config keys (and everything below them) that do not change what a run learns
NOT_RESULTS = (
    "seed",
    "report",
    "diagnostics",
    "logger",
    "run",
    "resume",
    "trainer.device",
    "trainer.checkpoint_every",
    "trainer.threads",
    "trainer.compile",
)
#: trainer keys whose "off" value is left out of a run's identity, so runs from before the key existed
#: pool with runs that leave it off
OFF_VALUES = {"trainer.precision": "32", "trainer.scheduler": "none", "trainer.early_stopping.patience": "0"}
#: the options of a learning-rate schedule, left out with it when it is off
SCHEDULE_OPTIONS = ("warmup_epochs", "step_size", "gamma", "min_lr", "plateau_patience")


def affects_results(key: str) -> bool:
    """False for the seed and the settings that change where or how a run is recorded, not what it learns."""
    return not any(key == k or key.startswith(f"{k}.") for k in NOT_RESULTS)


def identity(config: dict[str, Any]) -> str:
    """The configuration without the seed and the settings that do not affect results."""
    kept = {k: v for k, v in flatten(config).items() if affects_results(k)}
    for key, off in OFF_VALUES.items():
        if key in kept and str(kept[key]) == off:
            del kept[key]
    if "trainer.scheduler" not in kept:
        for option in SCHEDULE_OPTIONS:
            kept.pop(f"trainer.{option}", None)
    return json.dumps(kept, sort_keys=True, default=str)


def code_version(summary: Summary) -> tuple[str | None, str | None]:
    """The code that produced a run: its git commit and mtlrun's version."""
    return summary.git_commit, (summary.versions or {}).get("mtlrun")


def sweep_folder(run_dir: Path) -> Path | None:
    """The sweep folder of a multirun job (its parent), or None for a single run."""
    if str(RunFolder(run_dir).read_hydra().get("mode", "")).upper() != "MULTIRUN":
        return None
    return run_dir.resolve().parent


def candidate_roots(run_dir: Path, mode: str, pool_from: Sequence[str | Path], base: Path) -> list[Path]:
    """The folders searched for seeds of ``run_dir``'s configuration under ``mode``."""
    from mtlrun.config.schema import POOL_MODES  # the schema's list; imported here to keep mtlrun-compare light

    if mode not in POOL_MODES:
        raise ValueError(f"unknown pool mode {mode!r}; choose from: {', '.join(POOL_MODES)}")
    roots: list[Path] = []
    if mode == "sweep":
        sweep = sweep_folder(run_dir)
        if sweep is not None:
            roots.append(sweep)
    elif mode == "folder":
        roots += [base / "outputs", base / "multirun"]
    roots += [Path(p) if Path(p).is_absolute() else base / p for p in pool_from]
    return roots


@dataclass
class Pool:
    """The runs pooled into one report (one per seed), and the ones left out with the reason."""

    runs: list[Path]
    dropped: list[dict[str, Any]] = field(default_factory=list)  # {"folder", "seed", "reason"}


def relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (with ``..`` where it lies elsewhere), in POSIX form."""
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def find_pool(run_dir: Path, mode: str, pool_from: Sequence[str | Path], base: Path) -> Pool:
    """The completed runs to pool with ``run_dir`` (itself first for its seed)."""
    own_folder = RunFolder(run_dir)
    own, own_summary = own_folder.read_config(), own_folder.read_summary()
    run_dir = run_dir.resolve()
    if own is None or own_summary is None:
        return Pool([run_dir])
    target, version = identity(own), code_version(own_summary)
    by_seed: dict[Any, Path] = {own.get("seed"): run_dir}
    dropped: list[dict[str, Any]] = []
    for folder in find_run_folders(candidate_roots(run_dir, mode, pool_from, base)):
        if folder == run_dir:
            continue
        config, summary = RunFolder(folder).read_config(), RunFolder(folder).read_summary()
        if config is None or summary is None or not summary.completed or identity(config) != target:
            continue
        seed = config.get("seed")
        where = relative(folder, base)
        if code_version(summary) != version:
            commit, package = code_version(summary)
            dropped.append({"folder": where, "seed": seed, "reason": f"other code (commit {commit}, mtlrun {package})"})
            continue
        kept = by_seed.get(seed)
        if kept is None:
            by_seed[seed] = folder
            continue
        newer = kept != run_dir and _mtime(folder) > _mtime(kept)
        loser = kept if newer else folder
        if newer:
            by_seed[seed] = folder
        dropped.append(
            {
                "folder": relative(loser, base),
                "seed": seed,
                "reason": f"duplicate of seed {seed}: kept {relative(by_seed[seed], base)}",
            }
        )
    return Pool([by_seed[s] for s in sorted(by_seed, key=_seed_order)], dropped)


def _seed_order(seed: Any) -> tuple[bool, int, str]:
    return (not isinstance(seed, int), seed if isinstance(seed, int) else 0, str(seed))


def _mtime(folder: Path) -> float:
    try:
        return (folder / SUMMARY).stat().st_mtime
    except OSError:
        return 0.0

"""The keys ``mtlrun-compare`` accepts in ``--by``, ``--filter`` and ``--sort``, checked against the runs.

A misspelt key (``--by balancr``) would otherwise put every run in one row labelled ``—``, and a
misspelt filter would keep nothing, both without a word; each is refused in one line that names
the closest valid keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from mtlrun.errors import ConfigError
from mtlrun.report.aggregate import Column, text
from mtlrun.report.folders import RunRecord

#: ``--sort`` keys that are not config keys or metric columns
SORT_RULES = ("rank", "delta_m", "score")
#: how many keys a message lists before "..."
SHOWN = 12


def config_keys(runs: Iterable[RunRecord]) -> set[str]:
    """Every dotted config key of the runs, plus group names (``arch`` for ``arch.name``)."""
    keys: set[str] = set()
    for run in runs:
        keys.update(run.config)
        keys.update(run.choices)
        keys.update(k[: -len(".name")] for k in run.config if k.endswith(".name"))
    return keys


def _groups(keys: set[str]) -> list[str]:
    return sorted(k for k in keys if f"{k}.name" in keys)


def _message(option: str, key: str, valid: Sequence[str], note: str) -> str:
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    shown = ", ".join(valid[:SHOWN]) + (", ..." if len(valid) > SHOWN else "")
    return f"{option} {key}: no run has this key; {hint}valid: {shown}{note}"


def check_config_keys(option: str, keys: Iterable[str], runs: Sequence[RunRecord]) -> None:
    """Raise a one-line ConfigError for the first of ``keys`` that no run's config has."""
    known = config_keys(runs)
    for key in keys:
        if key not in known:
            groups = _groups(known)
            valid = groups + sorted(k for k in known if k not in groups and not k.endswith(".name"))
            raise ConfigError(_message(option, key, valid, " (any dotted key of .hydra/config.yaml)"))


def check_filter_values(filters: Mapping[str, str], runs: Sequence[RunRecord]) -> None:
    """A filter that keeps no run names the values the runs have (``--filter balancer=ew`` on pcgrad runs)."""
    for key, want in filters.items():
        values = sorted({text(run.value(key)) for run in runs})
        if want not in values:
            raise ConfigError(f"--filter {key}={want}: no run has this value; values: {', '.join(values)}")


def check_sort_key(key: str | None, runs: Sequence[RunRecord], columns: Sequence[Column]) -> None:
    """``--sort`` takes a rule, a task, a ``TASK/METRIC`` column or a config key (optionally ``-``-prefixed)."""
    if not key:
        return
    name = key.lstrip("-")
    tasks = sorted({c.task for c in columns})
    metrics = [c.name for c in columns]
    if name in SORT_RULES or name in tasks or name in metrics or name in config_keys(runs):
        return
    valid = [*SORT_RULES, *tasks, *metrics, *_groups(config_keys(runs))]
    raise ConfigError(_message("--sort", name, valid, ", or a config key (prefix '-' to reverse)"))

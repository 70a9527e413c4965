"""``mtlrun.compare``: the table of ``mtlrun-compare`` for runs in hand (results or folders), without a shell.

One row per configuration, seeds pooled (mean ± std), ranked by Δm or the relative primary score,
with the Pareto set marked (:mod:`mtlrun.report.aggregate`); the same checks of ``by``, ``filters``
and ``sort`` as the command, each a one-line :class:`~mtlrun.errors.ConfigError`. Render it with
:func:`mtlrun.report.compare.render` (``"md"``, ``"csv"``, ``"json"``, ``"table"``) or read
``Comparison.rows``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mtlrun.api.results import RunResult, folders_of
from mtlrun.errors import ConfigError
from mtlrun.report.aggregate import RANK_RULES, Comparison, text
from mtlrun.report.aggregate import compare as pool_runs
from mtlrun.report.compare import mixed_warning
from mtlrun.report.compare_keys import check_config_keys, check_filter_values, check_sort_key
from mtlrun.report.folders import read_runs


def compare(
    runs: Iterable[RunResult | str | Path],
    *,
    by: Sequence[str] | None = None,
    filters: Mapping[str, object] | None = None,
    sort: str | None = None,
    rank_by: str | None = None,
    all_metrics: bool = False,
    at: str = "best",
    strict: bool = False,
) -> Comparison:
    """Pool ``runs`` (results of ``mtlrun.fit``/``mtlrun.sweep``, run folders, sweep folders or folders above
    them) as ``mtlrun-compare PATH... --by ... --filter ... --sort ...`` does.

    Runs whose configs differ in keys that change results and that a row averages over give a
    warning, or a :class:`ConfigError` with ``strict``.
    """
    if at not in ("best", "last"):
        raise ConfigError(f"at={at} is not valid; choose one of: best, last")
    if rank_by is not None and rank_by not in RANK_RULES:
        raise ConfigError(f"rank_by={rank_by} is not valid; choose one of: {', '.join(RANK_RULES)}")
    paths = folders_of(runs)
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        raise ConfigError(f"not a folder: {', '.join(missing)}")
    records = read_runs(paths, at=at)
    if not records:
        raise ConfigError(f"no run folders under {', '.join(map(str, paths)) or '(nothing given)'}")
    chosen = {str(k): v if isinstance(v, str) else text(v) for k, v in (filters or {}).items()}
    check_config_keys("by", list(by or []), records)
    check_config_keys("filters", chosen, records)
    check_filter_values(chosen, records)
    comparison = pool_runs(records, by=by, filters=chosen, all_metrics=all_metrics, sort=sort, rank_by=rank_by)
    check_sort_key(sort, records, comparison.columns)
    if comparison.mixed:
        if strict:
            raise ConfigError(mixed_warning(comparison))
        warnings.warn(mixed_warning(comparison), UserWarning, stacklevel=2)
    return comparison

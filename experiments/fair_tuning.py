"""fair_tuning: every balancer tuned with one budget on validation, then compared with tuned ew on test.

Kurin et al. (NeurIPS 2022) and Xin et al. (NeurIPS 2022) argue that equal weighting, tuned as well
as the specialised methods, matches them. This puts the claim to mtlrun's own machinery: for each
method, one sweep over the learning rates (and its main constant where it has one) with the tuning
seed, selected by the validation score ``run_objective`` (the sweeper's objective: mean primary
validation metric at the best epoch); then one sweep of the chosen setting over the test seeds.

With several tuning seeds a setting's score is its mean over them (one seed picks settings by
noise: with one seed, ew's chosen rate was worse on the test seeds than its default).

The comparison uses tuned ew as the reference. For each method and test seed, Δm against tuned ew is
the mean over tasks of the relative change of the primary test metric against ew's mean over its test
seeds (the Δm formula of ``mtlrun.results.objective`` with ew in place of the single-task networks);
Welch's two-sided test compares the method's per-seed values with ew's, and Holm's correction runs
across the methods.

    python experiments/fair_tuning.py                      # the preset: experiments/fair_tuning.yaml
    python experiments/fair_tuning.py 'methods=[ew,pcgrad]' 'lrs=[0.001]' out=/tmp/ft runs=/tmp/ft/runs

Settings are ``key=value`` overrides of the YAML's keys; a wrong key is one line and exit 2.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from preset_overrides import merged_preset

import mtlrun
from mtlrun.errors import CONFIG_EXIT, ConfigError
from mtlrun.report.stats import holm, welch
from mtlrun.results.atomic import write_json, write_text
from mtlrun.results.objective import defined_mean, run_objective, signed_relative_change

HERE = Path(__file__).resolve().parent
PRESET = HERE / "fair_tuning.yaml"


def load_settings(overrides: Sequence[str] = (), preset: Path = PRESET) -> dict[str, Any]:
    """The preset with ``key=value`` overrides; an unknown key or a malformed value is a ConfigError."""
    raw = merged_preset(preset, overrides)
    if raw["reference"] not in raw["methods"]:
        raise ConfigError(f"reference={raw['reference']} must be one of methods: {', '.join(raw['methods'])}")
    if len(raw["test_seeds"]) < 2:
        raise ConfigError(f"test_seeds={raw['test_seeds']} needs at least two seeds for Welch's test")
    return raw


def grid(method: str, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every setting of ``method`` in the budget: the learning rates times its constant's values."""
    axes: dict[str, list[Any]] = {"trainer.lr": list(settings["lrs"])}
    for key, values in ((settings["constants"] or {}).get(method) or {}).items():
        axes[f"balancer.{key}"] = list(values)
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]


def as_overrides(setting: Mapping[str, Any]) -> list[str]:
    return [f"{key}={value}" for key, value in setting.items()]


def sweep(settings: Mapping[str, Any], method: str, values: Mapping[str, Sequence[Any]], folder: Path) -> list:
    """One mtlrun sweep of ``method`` over ``values`` (key -> list), its run folders under ``folder``.

    A folder that already holds this sweep finished (every job completed, the same method and exactly
    the grid's settings and seeds) is read back instead of trained again, so an interrupted study
    continues where it stopped and studies split over processes share their sweeps.
    """
    done = finished(folder, method, values)
    if done is not None:
        return done
    overrides = [f"experiment={settings['experiment']}", f"balancer={method}", "report.baselines=false"]
    overrides += [f"{key}={','.join(str(v) for v in vals)}" for key, vals in values.items()]
    overrides += list(settings["extra"]) + [f"hydra.sweep.dir={folder}"]
    try:
        return mtlrun.sweep(overrides=overrides)
    except mtlrun.SweepFailed as ex:  # a failed or diverged job is a trial without a score
        return ex.results


def finished(folder: Path, method: str, values: Mapping[str, Sequence[Any]]) -> list | None:
    """The results of a completed sweep of exactly this grid in ``folder``, else None."""
    jobs = sorted((p for p in folder.glob("*") if (p / "summary.json").exists()), key=lambda p: p.name)
    results = [mtlrun.load_run(job) for job in jobs]
    keys = [key for key in values if key != "seed"]
    wanted = {(*combo, seed) for combo in itertools.product(*(values[k] for k in keys)) for seed in values["seed"]}
    found = {(*setting_of(r, keys).values(), r.config["seed"]) for r in results if r.completed}
    same_method = all(f"balancer={method}" in r.overrides for r in results)
    if results and len(results) == len(wanted) and found == wanted and same_method:
        return results
    return None


def setting_of(result: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The swept values of a run, read back from its config (``trainer.lr`` -> 0.001)."""
    found: dict[str, Any] = {}
    for key in keys:
        node: Any = result.config
        for part in key.split("."):
            node = node[part]
        found[key] = node
    return found


def tune(settings: Mapping[str, Any], method: str, runs: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The best setting of ``method`` by validation score, mean over the tuning seeds, and every trial."""
    settings_grid = grid(method, settings)
    keys = list(settings_grid[0])
    values = {key: sorted({s[key] for s in settings_grid}) for key in keys}
    seeds = list(settings["tune_seeds"])
    results = sweep(settings, method, {**values, "seed": seeds}, runs / "tune" / method)
    scores: dict[str, list[float | None]] = {}
    for r in results:
        setting = setting_of(r, keys)
        scores.setdefault(json.dumps(setting, sort_keys=True), []).append(
            run_objective(r.summary) if r.completed else None
        )
    trials = []
    for key, values_ in scores.items():
        kept = [v for v in values_ if v is not None]
        mean = statistics.fmean(kept) if len(kept) == len(seeds) else None  # a failed seed fails the trial
        trials.append({"setting": json.loads(key), "val_score": mean, "seed_scores": values_})
    scored = [t for t in trials if t["val_score"] is not None]
    if not scored:
        raise RuntimeError(f"no tuning run of {method} completed")
    return max(scored, key=lambda t: t["val_score"])["setting"], trials


def test_metrics(settings: Mapping[str, Any], method: str, best: Mapping[str, Any], runs: Path) -> list[Any]:
    """The chosen setting of ``method`` with every test seed."""
    values = {key: [value] for key, value in best.items()}
    results = sweep(settings, method, {**values, "seed": list(settings["test_seeds"])}, runs / "test" / method)
    return [r for r in results if r.completed]


def delta_against(result: Any, reference: Mapping[str, Mapping[str, float]]) -> float | None:
    """Δm (%) of one run's primary test metrics against ``reference`` ({task: {metric: value}})."""
    summary = result.summary
    return defined_mean(
        None
        if (
            change := signed_relative_change(
                result.metrics[task][metric], reference[task][metric], summary.directions[task][metric]
            )
        )
        is None
        else 100.0 * change
        for task, metric in summary.primary.items()
    )


def mean_metrics(results: Sequence[Any]) -> dict[str, dict[str, float]]:
    primary = results[0].summary.primary
    return {t: {m: statistics.fmean(r.metrics[t][m] for r in results)} for t, m in primary.items()}


def compare(settings: Mapping[str, Any], tested: Mapping[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """Per method: its per-seed Δm against tuned ew's mean, Welch's p against ew's own, Holm across methods."""
    name = settings["reference"]
    reference = mean_metrics(tested[name])
    deltas = {m: [d for r in runs if (d := delta_against(r, reference)) is not None] for m, runs in tested.items()}
    rows: dict[str, dict[str, Any]] = {}
    raw_p: dict[str, float] = {}
    for method, values in deltas.items():
        row: dict[str, Any] = {"delta_m": values, "mean": statistics.fmean(values) if values else None}
        row["std"] = statistics.stdev(values) if len(values) > 1 else None
        row["test"] = mean_metrics(tested[method])
        if method != name and len(values) > 1 and len(deltas[name]) > 1:
            result = welch(values, deltas[name])
            row.update(p=result.p_value, ci=[result.ci_low, result.ci_high])
            raw_p[method] = result.p_value
        rows[method] = row
    for method, p in holm(raw_p).items():
        rows[method]["p_holm"] = p
        better = rows[method]["mean"] > 0
        rows[method]["verdict"] = (
            ("beats" if better else "below") + " tuned ew" if p < settings["alpha"] else "no significant difference"
        )
    return rows


def table(settings: Mapping[str, Any], best: Mapping[str, Mapping[str, Any]], rows: Mapping[str, Any]) -> str:
    tasks = list(next(iter(rows.values()))["test"])
    lines = [
        "| method | tuned setting | "
        + " | ".join(f"{t} test" for t in tasks)
        + " | Δm vs tuned ew (%) | 95% CI | p (Welch) | p (Holm) | verdict |",
        "|---|---|" + "---:|" * len(tasks) + "---:|---|---:|---:|---|",
    ]
    order = sorted(rows, key=lambda m: (m != settings["reference"], -(rows[m]["mean"] or 0.0)))
    for method in order:
        row = rows[method]
        setting = ", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in best[method].items())
        metrics = [f"{next(iter(row['test'][t].values())):.4f}" for t in tasks]
        spread = f"{row['mean']:+.2f} ± {row['std']:.2f}" if row["std"] is not None else f"{row['mean']:+.2f}"
        ci = f"[{row['ci'][0]:+.2f}, {row['ci'][1]:+.2f}]" if "ci" in row else "reference"
        p = f"{row['p']:.3f}" if "p" in row else ""
        p_holm = f"{row['p_holm']:.3f}" if "p_holm" in row else ""
        lines.append(
            f"| {method} | {setting} | "
            + " | ".join(metrics)
            + f" | {spread} | {ci} | {p} | {p_holm} | {row.get('verdict', '')} |"
        )
    seeds = ", ".join(str(s) for s in settings["test_seeds"])
    lines.append(
        f"\nTest metrics at the best-validation epoch, mean over seeds {seeds}; Δm against tuned "
        f"{settings['reference']}'s mean, mean ± std over the seeds; Welch's two-sided test of the per-seed Δm "
        f"against {settings['reference']}'s own, Holm-corrected across the {len(rows) - 1} methods "
        f"(α = {settings['alpha']}).\n"
    )
    return "\n".join(lines) + "\n"


def tuning_table(trials: Mapping[str, list[dict[str, Any]]], best: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["| method | setting | validation score | chosen |", "|---|---|---:|---|"]
    for method, rows in trials.items():
        for trial in rows:
            setting = ", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in trial["setting"].items())
            score = "failed" if trial["val_score"] is None else f"{trial['val_score']:.4f}"
            lines.append(f"| {method} | {setting} | {score} | {'yes' if trial['setting'] == best[method] else ''} |")
    return "\n".join(lines) + "\n"


def run(settings: Mapping[str, Any], command: str) -> Path:
    out, runs = Path(settings["out"]), Path(settings["runs"])
    started = time.time()
    best: dict[str, dict[str, Any]] = {}
    trials: dict[str, list[dict[str, Any]]] = {}
    tested: dict[str, list[Any]] = {}
    for method in settings["methods"]:
        best[method], trials[method] = tune(settings, method, runs)
        tested[method] = test_metrics(settings, method, best[method], runs)
        print(f"{method}: chose {best[method]}, {len(tested[method])} test run(s)", flush=True)
    rows = compare(settings, tested)
    seconds = time.time() - started
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "table.md", table(settings, best, rows))
    write_text(out / "tuning.md", tuning_table(trials, best))
    write_json(out / "summary.json", {"settings": dict(settings), "best": best, "trials": trials, "rows": rows})
    write_text(
        out / "run.md",
        f"Command: {command}\nTime: {seconds / 60:.1f} min\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"torch {torch.__version__}, mtlrun {mtlrun.__version__}\nRun folders: {runs}\n",
    )
    print(table(settings, best, rows), end="")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args)
        run(settings, "python experiments/fair_tuning.py " + " ".join(shlex.quote(a) for a in args))
    except ConfigError as ex:
        print(f"fair_tuning: error: {ex}", file=sys.stderr)
        return CONFIG_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())

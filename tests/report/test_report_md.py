"""report.md and transfer.json of a 3-seed sweep and of a lone seed, built from hand-made folders."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from mtlrun.report.aggregate import compare
from mtlrun.report.folders import read_runs
from mtlrun.report.negative_transfer import ReportOptions, build_report, print_verdicts
from mtlrun.results.baseline_cache import BaselineCache
from mtlrun.results.transfer_report import TransferReport
from tests.report.report_folders import make_job, store_baselines

MTL = {0: (0.60, 1.30), 1: (0.66, 1.20), 2: (0.57, 1.45)}  # seed: (acc, mae)
STL = {0: (0.80, 1.00), 1: (0.82, 1.05), 2: (0.79, 0.98)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Three seeds of one sweep, their baselines, and each job's report rebuilt as at the sweep's end."""
    base = tmp_path_factory.mktemp("launch")
    cache = BaselineCache(base / "outputs" / "baselines")
    jobs = []
    for seed, (acc, mae) in MTL.items():
        job = make_job(
            base / "multirun/2026-12-01/10-00-00" / str(seed),
            seed=seed,
            acc=acc,
            mae=mae,
            overrides=("dataset=synthetic", "arch=hps"),
            affinity=-0.2 - seed / 100,
        )
        store_baselines(cache, job, *STL[seed])
        jobs.append(job)
    for job in jobs:
        build_report(job, cache, ReportOptions(base=base))
    return base


def test_transfer_json_has_intervals_raw_and_adjusted_p_and_own_seed_delta(sweep):
    job = sweep / "multirun/2026-12-01/10-00-00/0"
    report = json.loads((job / "transfer.json").read_text())
    assert report["seeds"] == [0, 1, 2] and report["correction"] == "holm" and report["min_seeds"] == 3
    for entry in report["tasks"].values():
        low, high = entry["ci95"]
        assert low < entry["delta"] < high
        assert entry["p_value"] is not None and entry["p_adjusted"] >= entry["p_value"]
    own = [json.loads((job.parent / str(s) / "transfer.json").read_text())["own"]["delta_m"] for s in (0, 1, 2)]
    assert len(set(own)) == 3  # each seed against its own-seed baselines, not the pooled value
    assert [p["folder"] for p in report["pooled_runs"]] == [f"multirun/2026-12-01/10-00-00/{s}" for s in (0, 1, 2)]
    assert report["baseline_cache"] == "outputs/baselines"


def test_sweep_table_shows_the_spread_of_delta_m_over_seeds(sweep):
    [row] = compare(read_runs([sweep / "multirun"])).rows
    assert row.delta_m is not None and row.delta_m.n == 3 and row.delta_m.std > 0.5


def test_report_md_of_a_three_seed_sweep(sweep):
    text = (sweep / "multirun/2026-12-01/10-00-00/1/report.md").read_text()
    assert "two-sided Welch t-test" in text and "Holm's correction" in text and "95% CI (%)" in text
    assert "| p (raw) | p (Holm) |" in text and "Welch 95% interval" in text
    assert "## Configuration" in text and "- encoder: mlp (hidden=[16], dropout=0.0);" in text and "lr 0.001" in text
    assert "- epochs 2" in text and "## Compute cost" in text and "| multi-task model | 1,000 | 4.0 s |" in text
    assert "| sum of the 2 single-task baselines | 1,800 | 3.0 s |" in text
    assert "- seed 2: `multirun/2026-12-01/10-00-00/2`" in text
    assert str(sweep) not in text  # relative paths only
    assert "How to get verdicts" not in text
    assert (
        "- [tradeoff](plots/tradeoff.png)" in text
        and (sweep / "multirun/2026-12-01/10-00-00/1/plots/tradeoff.png").is_file()
    )
    # a and b hurt each other on every seed: keep them apart, by a margin far above the spread
    assert "**{a} | {b}**" in text and "margin exceeds the seed-to-seed spread" in text
    assert "mtlrun dataset=synthetic arch=branched 'arch.branch_at={a:0,b:0}'" in text
    assert "mtlrun -m dataset=synthetic arch=hps 'tasks.names=[a],[b]'" in text


def test_lone_seed_report_says_how_to_get_verdicts(tmp_path):
    cache = BaselineCache(tmp_path / "outputs" / "baselines")
    job = make_job(
        tmp_path / "outputs/2026-12-01/10-00-00",
        seed=1,
        acc=0.6,
        mae=1.3,
        mode="RUN",
        overrides=("arch=hps", "balancer=ew"),
        affinity=0.1,
    )
    store_baselines(cache, job, 0.8, 1.0)
    report = build_report(job, cache, ReportOptions(base=tmp_path))
    assert {v.verdict for v in report.tasks.values()} == {"untested (1 seed)"}
    assert report.how_to_get_verdicts == "mtlrun -m arch=hps balancer=ew seed=0,1,2"
    text = (job / "report.md").read_text()
    assert "## How to get verdicts" in text and "mtlrun -m arch=hps balancer=ew seed=0,1,2" in text
    assert "for verdicts: mtlrun -m arch=hps balancer=ew seed=0,1,2" in printed(report)
    assert "**No stable grouping**" in text and "unknown (one seed)" in text


def printed(report: TransferReport) -> str:
    console = Console(file=io.StringIO(), width=200, no_color=True)
    print_verdicts(report, console)
    return console.file.getvalue()


def test_a_sweep_job_does_not_print_the_seed_command_its_sweep_is_running(tmp_path):
    cache = BaselineCache(tmp_path / "baselines")
    job = make_job(tmp_path / "multirun/d/s/0", seed=0, acc=0.6, mae=1.3, overrides=("seed=0,1,2",))
    store_baselines(cache, job, 0.8, 1.0)
    report = build_report(job, cache, ReportOptions(base=tmp_path))
    assert report.how_to_get_verdicts is not None and "for verdicts" not in printed(report)


def test_noisy_affinity_gives_no_stable_grouping(tmp_path):
    cache = BaselineCache(tmp_path / "baselines")
    jobs = [
        make_job(tmp_path / f"multirun/d/s/{seed}", seed=seed, acc=0.6, mae=1.3, affinity=affinity)
        for seed, affinity in enumerate((0.3, -0.4, 0.2))
    ]
    for job in jobs:
        store_baselines(cache, job, 0.8, 1.0)
    report = build_report(jobs[0], cache, ReportOptions(base=tmp_path))
    grouping = report.grouping
    assert grouping["margin"] < grouping["spread"] and not grouping["stable"]
    assert "**No stable grouping**" in (jobs[0] / "report.md").read_text()

"""The run folder's owner: typed records round-trip, readers tolerate damaged files."""

from __future__ import annotations

import doctest
import json
import math

import pytest

import mtlrun.results.objective
import mtlrun.results.run_folder
from mtlrun.results.run_folder import MetricRow, RunFolder, RunIdentity, Summary


@pytest.mark.parametrize("module", [mtlrun.results.run_folder, mtlrun.results.objective])
def test_docstring_examples_run(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def test_summary_round_trip(tmp_path):
    folder = RunFolder(tmp_path)
    summary = Summary(
        status="completed",
        run=RunIdentity(dataset="d", arch="hps", balancer="ew", encoder="mlp", tasks=["a", "b"], seed=3),
        primary={"a": "acc", "b": "mae"},
        directions={"a": {"acc": True}, "b": {"mae": False}},
        metrics={
            "best": {"epoch": 2, "val": {"a": {"acc": 0.5}}, "test": {"a": {"acc": 0.75}, "b": {"mae": math.inf}}}
        },
    )
    folder.write_summary(summary)
    raw = json.loads((tmp_path / "summary.json").read_text())
    assert raw["metrics"]["best"]["test"]["b"]["mae"] == "inf"  # strict JSON on disk
    back = folder.read_summary()
    assert back.run == summary.run and back.completed
    assert back.results("best", "test") == {"a": {"acc": 0.75}, "b": {"mae": math.inf}}
    assert back.results("last", "test") == {}


def test_readers_tolerate_damaged_files(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.read_summary() is None and folder.read_config() is None and folder.read_metric_rows() == []
    (tmp_path / "summary.json").write_text("{not json")
    summary, reason = folder.summary_or_reason()
    assert summary is None and "summary.json" in reason
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "run": 3, "metrics": [1], "extra": 1}))
    odd = folder.read_summary()
    assert odd.status == "completed" and odd.run == RunIdentity() and odd.results("best", "test") == {}
    rows = [MetricRow(1, "train", "a", "loss", 0.5, step=4), MetricRow(1, "val", "a", "acc", 0.9, step=4)]
    folder.write_metrics(rows)
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 2, "split": "tr')  # killed mid-line
    assert folder.read_metric_rows() == [r.to_dict() for r in rows]


def test_a_transfer_report_round_trips_through_the_run_folder(tmp_path):
    from mtlrun.results.transfer_report import MetricTransfer, TaskTransfer, TransferReport

    metric = MetricTransfer(mtl=0.5, mtl_std=0.1, stl=0.6, stl_std=float("nan"), higher_is_better=True, delta=-16.7)
    report = TransferReport(
        seeds=[0, 1],
        tasks={"a": TaskTransfer(delta=-16.7, ci95=[-20.0, -10.0], verdict="negative transfer", metrics={"m": metric})},
        own={"seed": 0, "delta_m": -16.7},
        delta_m=-16.7,
    )
    folder = RunFolder(tmp_path)
    folder.write_transfer(report)
    back = folder.read_transfer()
    assert back.tasks["a"].metrics["m"].stl_std != back.tasks["a"].metrics["m"].stl_std  # NaN, written as "nan"
    back.tasks["a"].metrics["m"].stl_std = report.tasks["a"].metrics["m"].stl_std = None
    assert back == report
    assert back.own_delta_m == -16.7 and back.baseline_metrics() == {"a": {"m": 0.6}}


def test_an_older_transfer_report_reads_with_defaults(tmp_path):
    # written before 'own' existed: one pooled seed, so the run's Δm is the report's Δm
    (tmp_path / "transfer.json").write_text('{"seeds": [3], "delta_m": "nan", "tasks": {"a": {"delta": 1.5}}, "x": 1}')
    report = RunFolder(tmp_path).read_transfer()
    assert report.own is None and report.own_delta_m is None and report.tasks["a"].delta == 1.5
    (tmp_path / "transfer.json").write_text('{"seeds": [3], "delta_m": 2.0}')
    assert RunFolder(tmp_path).read_transfer().own_delta_m == 2.0

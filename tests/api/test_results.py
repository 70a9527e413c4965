"""``load_run`` and ``load_sweep`` read run folders into typed results through the run folder's readers."""

from __future__ import annotations

import json
import math

import pytest
import yaml

import mtlrun
from mtlrun.results.transfer_report import TransferReport
from tests.report.helpers import make_run


def test_load_run_reads_the_summary_config_overrides_and_report(tmp_path):
    folder = make_run(tmp_path / "run", acc=0.75, mae=0.5)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["arch=hps", "seed=0"]))
    report = {
        "tasks": {
            "a": {
                "delta": -2.5,
                "ci95": [-4.0, -1.0],
                "verdict": "negative transfer",
                "p_value": 0.01,
                "p_adjusted": 0.02,
                "n_mtl": 3,
                "n_stl": 3,
                "metrics": {"acc": {"mtl": 0.75, "stl": 0.8, "delta": -6.25, "higher_is_better": True}},
            },
            "b": {"delta": "nan", "verdict": "untested (1 seed)", "metrics": {"mae": {"mtl": "inf", "stl": 1.0}}},
        },
        "delta_m": 1.5,
        "own": {"seed": 0, "delta_m": 2.0},
        "seeds": [0, 1, 2],
        "complete": True,
        "future_key": {"kept": True},
    }
    (folder / "transfer.json").write_text(json.dumps(report))
    result = mtlrun.load_run(folder)
    assert result.folder == folder.resolve() and result.status == "completed" and result.completed
    assert result.metrics == {"a": {"acc": 0.75, "f1": 0.375}, "b": {"mae": 0.5}}
    assert result.best_epoch == 2 and result.results("last", "test") == result.metrics
    assert result.config["arch"] == {"name": "hps"} and result.overrides == ["arch=hps", "seed=0"]
    assert result.delta_m == 2.0  # this run's seed, not the pooled 1.5
    transfer = result.transfer
    assert transfer is not None and transfer.delta_m == 1.5 and transfer.own_delta_m == 2.0
    assert transfer.negative_tasks == ["a"] and transfer.tasks["a"].ci95 == [-4.0, -1.0]
    assert transfer.tasks["a"].tested and not transfer.tasks["b"].tested
    assert math.isnan(transfer.tasks["b"].delta) and transfer.tasks["b"].metrics["mae"].mtl == math.inf
    assert transfer.delta_m_drop is None  # unknown keys (future_key) are ignored
    assert mtlrun.load_run(str(folder)).summary == result.summary  # a path as text; (NaN != NaN, so not ==)


def test_an_old_report_without_own_delta_m_gives_its_single_seed_value():
    assert TransferReport.from_dict({"delta_m": 3.0, "seeds": [0]}).own_delta_m == 3.0
    assert TransferReport.from_dict({"delta_m": 3.0, "seeds": [0, 1]}).own_delta_m is None
    assert TransferReport.from_dict({"tasks": [1, 2], "seeds": "x"}).tasks == {}


def test_a_failed_run_is_a_result_with_its_error(tmp_path):
    result = mtlrun.load_run(make_run(tmp_path / "bad", status="failed"))
    assert result.status == "failed" and result.error == "it failed" and result.metrics == {}
    assert result.best_epoch is None and result.transfer is None and result.delta_m is None


def test_what_is_not_a_run_folder_is_one_line(tmp_path):
    with pytest.raises(mtlrun.RunFolderError, match="no such folder"):
        mtlrun.load_run(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(mtlrun.RunFolderError, match="is not a run folder"):
        mtlrun.load_run(tmp_path / "empty")
    make_run(tmp_path / "sweep" / "0")
    with pytest.raises(mtlrun.RunFolderError, match=r"holds 1 run\(s\): mtlrun\.load_sweep"):
        mtlrun.load_run(tmp_path / "sweep")
    broken = make_run(tmp_path / "broken")
    (broken / "summary.json").write_text('{"status": "compl')
    with pytest.raises(mtlrun.RunFolderError, match="summary.json is not valid JSON"):
        mtlrun.load_run(broken)
    with pytest.raises(mtlrun.RunFolderError, match="holds no run folders"):
        mtlrun.load_sweep(tmp_path / "empty")


def test_load_sweep_reads_jobs_in_job_order(tmp_path):
    for num in (10, 2, 0, 1):  # by path, 10 would come before 2
        folder = make_run(tmp_path / str(num), seed=num)
        hydra = yaml.safe_load((folder / ".hydra" / "hydra.yaml").read_text())
        hydra["hydra"]["job"] = {"num": num}
        (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    assert [r.config["seed"] for r in mtlrun.load_sweep(tmp_path)] == [0, 1, 2, 10]

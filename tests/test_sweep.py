"""Multirun end to end: the sweep-end summary, failing jobs, launchers and the optuna sweeper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mtlrun.results.objective import run_objective
from mtlrun.results.run_folder import Summary
from tests.sweep_helpers import SMALL

ROOT = Path(__file__).resolve().parent.parent


def only_sweep(cwd: Path) -> Path:
    sweeps = [p for p in (cwd / "multirun").glob("*/*") if p.is_dir()]
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def job_statuses(sweep: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["status"] for p in sweep.glob("*/summary.json")}


def test_sweep_over_groups_writes_summary_and_report(cli, tmp_path):
    result = cli(
        "-m",
        "arch=hps,single_task",
        "balancer=ew,fixed",
        "seed=0,1",
        *SMALL,
        "trainer.epochs=1",
        "dataset.num_samples=300",
    )
    assert result.code == 0, result.err
    sweep = only_sweep(tmp_path)
    assert job_statuses(sweep) == {str(i): "completed" for i in range(8)}
    for job in sweep.glob("[0-9]*"):
        assert (job / ".hydra" / "config.yaml").is_file() and (job / "metrics.jsonl").is_file()
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["label_keys"] == ["arch.name", "balancer.name"]
    assert summary["pooled"] == ["seed"]
    assert len(summary["rows"]) == 4 and all(r["completed"] == 2 for r in summary["rows"])
    assert sorted(r["rank"] for r in summary["rows"]) == [1, 2, 3, 4]
    assert any(r["pareto"] for r in summary["rows"])
    assert all(r["metrics"]["t1/mae"]["std"] is not None for r in summary["rows"])
    assert summary["problems"] == []
    report = (sweep / "sweep_report.md").read_text()
    assert "| rank (score) | arch | balancer |" in report and "± " in report and "Pareto-optimal" in report


def test_failed_job_is_listed_and_sweep_exits_non_zero(cli, tmp_path, monkeypatch):
    from mtlrun.train import run as train_run

    real = train_run.Trainer.fit
    calls = []

    def crash_second_job(self, callbacks=()):  # a failure, not a config mistake: the other jobs go on
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("nope, the job crashed")
        return real(self, callbacks)

    monkeypatch.setattr(train_run.Trainer, "fit", crash_second_job)
    result = cli("-m", "seed=0,1", *SMALL, "trainer.epochs=1")
    assert result.code == 1
    sweep = only_sweep(tmp_path)
    assert job_statuses(sweep) == {"0": "completed", "1": "failed"}
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    [problem] = summary["problems"]
    assert problem["status"] == "failed" and "nope" in problem["reason"]
    assert "nope" in (sweep / "sweep_report.md").read_text()


def test_a_mistake_only_the_data_shows_stops_a_new_sweep(cli, tmp_path):
    result = cli("-m", "balancer=fixed", "tasks.weights={t1:2},{nope:1}", *SMALL, "trainer.epochs=1")
    assert result.code == 2
    [line] = [x for x in result.err.splitlines() if x.strip()]
    assert line.startswith("mtlrun: error: ") and "nope" in line and "1 earlier job(s) are kept" in line
    [sweep] = [p.parent for p in (tmp_path / "multirun").rglob("multirun.yaml")]
    assert (sweep / "0" / "summary.json").is_file() and not (sweep / "1").exists()


def test_run_score_is_signed_mean_of_primary_validation_metrics():
    summary = {
        "status": "completed",
        "primary": {"a": "acc", "b": "mae"},
        "directions": {"a": {"acc": True}, "b": {"mae": False}},
        "metrics": {"best": {"val": {"a": {"acc": 0.8}, "b": {"mae": 0.2}}}},
    }
    assert run_objective(Summary.from_dict(summary)) == pytest.approx((0.8 - 0.2) / 2)
    assert run_objective(Summary.from_dict(summary), "b/mae") == pytest.approx(-0.2)
    assert run_objective(Summary.from_dict({**summary, "status": "diverged"})) is None


def test_joblib_launcher_runs_jobs_in_parallel_processes(cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    result = cli(
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "arch=hps,single_task", *SMALL, "trainer.epochs=1"
    )
    assert result.code == 0, result.err
    sweep = only_sweep(tmp_path)
    assert job_statuses(sweep) == {"0": "completed", "1": "completed"}
    assert "Joblib.Parallel(n_jobs=2" in result.out + result.err
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.pt").is_file()
    assert len(json.loads((sweep / "sweep_summary.json").read_text())["rows"]) == 2


def test_submitit_local_launcher(cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = cli(
        "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=3", *SMALL, "trainer.epochs=1"
    )
    assert result.code == 0, result.err
    sweep = only_sweep(tmp_path)
    assert job_statuses(sweep) == {"0": "completed"}
    assert (sweep / ".submitit").is_dir()
    assert json.loads((sweep / "0" / "summary.json").read_text())["run"]["seed"] == 3
    assert json.loads((sweep / "sweep_summary.json").read_text())["rows"][0]["completed"] == 1


def test_slurm_preset_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_module

    from mtlrun.config.schema import register_schema

    register_schema()
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        cfg = compose(
            "config", overrides=["hydra/launcher=slurm_gpu", "hydra.launcher.partition=long"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.partition == "long" and launcher.gpus_per_node == 1 and launcher.array_parallelism == 16
    assert launcher.timeout_min == 240 and launcher.mem_gb == 32


def test_optuna_preset_searches_balancer_weights(cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    result = cli(
        "-m",
        "sweep=optuna_fixed_weights",
        "hydra.sweeper.n_trials=2",
        *SMALL[1:],
        "trainer.epochs=1",
    )
    assert result.code == 0, result.err
    sweep = only_sweep(tmp_path)
    assert job_statuses(sweep) == {"0": "completed", "1": "completed"}
    weights = {json.loads((sweep / j / "summary.json").read_text())["run"]["balancer"] for j in ("0", "1")}
    assert weights == {"fixed"}
    tried = {
        yaml.safe_load((sweep / j / ".hydra" / "config.yaml").read_text())["tasks"]["weights"]["t2"] for j in ("0", "1")
    }
    assert len(tried) == 2 and all(0.1 <= w <= 10 for w in tried)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"tasks.weights.t2", "trainer.lr"}
    scores = [
        run_objective(Summary.from_dict(json.loads((sweep / j / "summary.json").read_text()))) for j in ("0", "1")
    ]
    assert best["best_value"] == pytest.approx(max(scores))

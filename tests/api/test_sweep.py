"""``mtlrun.sweep`` is ``mtlrun -m``: the same sweep folder, jobs and sweep summary, a result per job in job
order; a sweep with failed jobs raises; ``mtlrun.compare`` pools the results as ``mtlrun-compare`` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import mtlrun
from tests.api.test_parity import files, hydra_record, metric_rows, untimed_summary
from tests.conftest import run_subprocess

SMALL = [
    "dataset=synthetic",
    "dataset.num_samples=300",
    "dataset.input_dim=8",
    "trainer.epochs=1",
    "diagnostics.every=0",
    "report.baselines=false",
]


def only_sweep_folder(root: Path) -> Path:
    found = sorted(p.parent for p in root.glob("multirun/*/*/multirun.yaml"))
    assert len(found) == 1, found
    return found[0]


def sweep_record(folder: Path) -> dict:
    record = yaml.safe_load((folder / "multirun.yaml").read_text(encoding="utf-8"))
    record["hydra"]["runtime"].pop("cwd")
    return record


def sweep_summary(folder: Path) -> dict:
    summary = json.loads((folder / "sweep_summary.json").read_text(encoding="utf-8"))
    summary.pop("sweep_dir")
    for row in summary["rows"]:
        assert [Path(p).relative_to(folder).as_posix() for p in row.pop("paths")] == ["0", "1"]
    return summary


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The same sweep by the console script and by ``mtlrun.sweep``, each in its own launch folder."""
    root = tmp_path_factory.mktemp("sweeps")
    by_command, by_api = root / "command", root / "api"
    by_command.mkdir()
    by_api.mkdir()
    done = run_subprocess("-m", "seed=0,1", *SMALL, cwd=by_command)
    assert done.code == 0, done.err
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(by_api)
        results = mtlrun.sweep(overrides=["seed=0,1", *SMALL])
    return only_sweep_folder(by_command), only_sweep_folder(by_api), results


def test_sweep_writes_the_commands_sweep_folder(swept):
    command, api, _ = swept
    assert files(api) == files(command)
    assert sweep_record(api) == sweep_record(command)
    assert sweep_summary(api) == sweep_summary(command)
    for job in ("0", "1"):
        a, c = api / job, command / job
        assert (a / ".hydra" / "config.yaml").read_text() == (c / ".hydra" / "config.yaml").read_text()
        assert hydra_record(a) == hydra_record(c)
        assert metric_rows(a) == metric_rows(c) and untimed_summary(a) == untimed_summary(c)


def test_sweep_returns_a_result_per_job_in_job_order(swept):
    _, api, results = swept
    assert [r.folder for r in results] == [(api / "0").resolve(), (api / "1").resolve()]
    assert [r.config["seed"] for r in results] == [0, 1] and all(r.completed for r in results)
    assert results == mtlrun.load_sweep(api)


def test_compare_pools_results_as_mtlrun_compare_does(swept, capsys):
    from mtlrun.report.compare import main as compare_command
    from mtlrun.report.compare import render

    _, api, results = swept
    comparison = mtlrun.compare(results)
    assert len(comparison.rows) == 1 and comparison.rows[0].metrics["t1/mae"].n == 2  # seeds pooled
    assert compare_command([str(api), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(render(comparison, "json"))
    by_seed = mtlrun.compare([api], by=["seed"], sort="seed")
    assert [row.label for row in by_seed.rows] == [{"seed": "0"}, {"seed": "1"}]
    assert len(mtlrun.compare(results, filters={"seed": 1}).rows[0].runs) == 1
    with pytest.raises(mtlrun.ConfigError, match="did you mean seed"):
        mtlrun.compare(results, by=["sed"])
    with pytest.raises(mtlrun.ConfigError, match="rank_by=nope"):
        mtlrun.compare(results, rank_by="nope")


def test_a_sweep_with_a_failed_job_raises_with_every_result(tmp_path, monkeypatch):
    from mtlrun.train import run as train_run

    monkeypatch.chdir(tmp_path)
    real = train_run.Trainer.fit
    calls = []

    def crash_second_job(self, callbacks=()):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the job crashed")
        return real(self, callbacks)

    monkeypatch.setattr(train_run.Trainer, "fit", crash_second_job)
    with pytest.raises(mtlrun.SweepFailed) as raised:
        mtlrun.sweep(overrides=["seed=0,1", *SMALL])
    error = raised.value
    assert error.exit_code == 1 and "1 job(s) of the sweep" in str(error) and "the job crashed" in str(error)
    assert [r.status for r in error.results] == ["completed", "failed"]
    assert (only_sweep_folder(tmp_path) / "sweep_summary.json").is_file()


def test_a_mistake_only_the_data_shows_stops_a_new_sweep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(mtlrun.ConfigError, match=r"tasks.names=nope.*1 earlier job\(s\) are kept"):
        mtlrun.sweep(overrides=["tasks.names=[t1],[nope]", *SMALL])
    sweep = only_sweep_folder(tmp_path)
    assert (sweep / "0" / "summary.json").is_file() and not (sweep / "1").exists()  # the finished job is kept


def test_a_refused_sweep_folder_is_a_config_error(tmp_path, monkeypatch, swept):
    _, api, _ = swept
    monkeypatch.chdir(tmp_path)
    with pytest.raises(mtlrun.ConfigError, match="already holds a sweep"):
        mtlrun.sweep(overrides=["seed=0,1", f"hydra.sweep.dir={api}", *SMALL])
    with pytest.raises(mtlrun.ConfigError, match=r"mtlrun\.sweep\(overrides=\['resume=FOLDER'\]\)"):
        mtlrun.fit(overrides=[f"resume={api}"])
    with pytest.raises(mtlrun.ConfigError, match="is one job of the sweep"):
        mtlrun.fit(overrides=[f"resume={api / '0'}"])
    assert list(tmp_path.iterdir()) == []


def test_resume_continues_a_run_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = mtlrun.fit(overrides=SMALL)
    longer = mtlrun.fit(overrides=[f"resume={first.folder}", "trainer.epochs=2"])
    assert longer.folder == first.folder and longer.summary.epochs_completed == 2
    assert longer.summary.resumed_after == [{"epoch": 1, "step": first.summary.timings["steps"]}]
    files = {p: p.read_bytes() for p in longer.folder.rglob("*") if p.is_file()}
    again = mtlrun.fit(overrides=[f"resume={first.folder}", "trainer.epochs=2"])  # nothing to resume
    assert again.folder == first.folder and again.summary.epochs_completed == 2
    assert {p: p.read_bytes() for p in longer.folder.rglob("*") if p.is_file()} == files
    with pytest.raises(mtlrun.ConfigError, match="fewer than the 2 epochs"):
        mtlrun.fit(overrides=[f"resume={first.folder}", "trainer.epochs=1"])
    assert {p: p.read_bytes() for p in longer.folder.rglob("*") if p.is_file()} == files
    with pytest.raises(mtlrun.ConfigError, match=r"mtlrun\.fit\(overrides=\['resume=FOLDER'\]\)"):
        mtlrun.sweep(overrides=[f"resume={first.folder}"])


@pytest.mark.slow
def test_a_sweep_through_the_joblib_launcher_returns_its_jobs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = mtlrun.sweep(overrides=["seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SMALL])
    assert [(r.folder.name, r.config["seed"], r.status) for r in results] == [
        ("0", 0, "completed"),
        ("1", 1, "completed"),
    ]
    assert (only_sweep_folder(tmp_path) / "sweep_summary.json").is_file()

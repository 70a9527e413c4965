"""Experiment-tracker loggers: each one for real, read back with the tracker's own reader."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import yaml

from mtlrun.errors import ConfigError
from mtlrun.loggers import LOGGERS, GuardedLogger, RunLogger, TrackerFailed, build_logger, check_logger, epoch_scalars
from mtlrun.train.records import EpochRecord
from tests.sweep_helpers import SMALL


def run_dir(result) -> Path:
    assert result.code == 0, result.err
    [folder] = [p.parent for p in result.cwd.glob("outputs/*/*/summary.json")]
    return folder


def test_registry_and_help_list_every_logger(cli):
    assert LOGGERS.names() == ["csv", "mlflow", "none", "tensorboard"]
    result = cli("--help")
    assert "logger:" in result.out and "tensorboard" in result.out and "mlflow" in result.out


def test_epoch_scalars_names():
    record = EpochRecord(
        epoch=3,
        step=30,
        train_loss={"a": 1.0},
        weights={"a": 0.5},
        extra_losses={"aux": 0.1},
        val={"a": {"acc": 0.9}},
        val_loss={"a": 0.7},
        balancer_extras={"solver_failures": 0.0},
    )
    assert epoch_scalars(record) == {
        "train/loss/a": 1.0,
        "train/weight/a": 0.5,
        "train/aux": 0.1,
        "balancer/solver_failures": 0.0,
        "val/loss/a": 0.7,
        "val/a/acc": 0.9,
    }


def test_default_logger_is_none_and_writes_nothing_extra(cli):
    folder = run_dir(cli(*SMALL))
    config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
    assert config["logger"] == {"name": "none"}
    assert not (folder / "csv").exists() and not (folder / "tensorboard").exists()


def test_csv_logger(cli):
    folder = run_dir(cli("logger=csv", *SMALL))
    with open(folder / "csv" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    epochs = [r for r in rows if r["val/t1/mae"]]
    assert [int(r["step"]) for r in epochs] == [1, 2]
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    for name in ("train/loss/t1", "train/loss/t2", "train/weight/t1", "val/loss/t2", "val/t2/rmse"):
        split, *rest = name.split("/")
        metric, task = (rest[0], rest[1]) if split == "train" or rest[0] == "loss" else (rest[1], rest[0])
        [expected] = [
            r["value"] for r in metrics if (r["epoch"], r["split"], r["task"], r["metric"]) == (2, split, task, metric)
        ]
        assert float(epochs[-1][name]) == pytest.approx(expected, rel=1e-6)  # the run folder's value, mirrored
    assert float(epochs[0]["train/weight/t1"]) == 1.0
    tests = [r for r in rows if r.get("test/best/t1/mae")]
    assert len(tests) == 1 and float(tests[0]["test/best/t1/mae"]) > 0
    config = yaml.safe_load((folder / "csv" / "config.yaml").read_text())
    assert config["arch"]["name"] == "hps" and config["logger"]["name"] == "csv"
    assert (folder / "csv" / "status.txt").read_text().strip() == "completed"


def test_tensorboard_logger(cli):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = run_dir(cli("logger=tensorboard", "balancer=fixed", "tasks.weights={t1:2}", *SMALL))
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in ("val/t1/mae", "val/t2/mae", "train/loss/t1", "train/weight/t1", "val/loss/t2", "test/best/t2/mae"):
        assert tag in scalars, tag
    assert [e.step for e in events.Scalars("val/t1/mae")] == [1, 2]
    assert [e.value for e in events.Scalars("train/weight/t1")] == [2.0, 2.0]
    assert "config/text_summary" in events.Tags()["tensors"]


def test_tensorboard_logger_rejects_bad_option(cli):
    pytest.importorskip("tensorboard")
    result = cli("logger=tensorboard", "logger.flush_secs=0", *SMALL)
    assert result.code == 2 and "logger.flush_secs=0" in result.err


def test_mlflow_logger(cli, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    folder = run_dir(
        cli("logger=mlflow", f"logger.tracking_uri={uri}", "logger.experiment=demo", "logger.tags={team:mtl}", *SMALL)
    )
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("demo")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["team"] == "mtl" and run.data.tags["mtlrun.status"] == "completed"
    assert run.data.tags["mtlrun.run_folder"] == str(folder.resolve())
    assert run.data.params["arch.name"] == "hps" and run.data.params["dataset.name"] == "synthetic"
    history = client.get_metric_history(run.info.run_id, "val/t1/mae")
    assert [m.step for m in history] == [1, 2]
    assert {"train/loss/t2", "train/weight/t1", "test/best/t1/mae"} <= set(run.data.metrics)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"config.yaml", "summary.json"}


def test_unknown_logger_option_and_name_are_one_line_errors(cli):
    result = cli("logger=csv", "+logger.bogus=1", *SMALL)
    assert result.code == 2 and "logger.bogus" in result.err
    result = cli("logger=wandb", *SMALL)
    assert result.code == 2 and "logger=wandb is not valid" in result.err and "tensorboard" in result.err


def test_build_logger_validates_options(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'logger.nope'"):
        build_logger({"name": "csv", "nope": 1}, tmp_path)
    with pytest.raises(ConfigError, match="logger.dir"):
        build_logger({"name": "csv", "dir": 3}, tmp_path)


class Exploding(RunLogger):
    """Fails at the first call and records every call it receives."""

    def __init__(self, output_dir, run_name):
        super().__init__(output_dir, run_name)
        self.calls: list[str] = []

    def log_config(self, config):
        self.calls.append("log_config")
        raise RuntimeError("tracker down")

    def log_scalars(self, scalars, step):
        self.calls.append("log_scalars")

    def close(self, status):
        self.calls.append("close")


def test_a_broken_tracker_fails_loudly_once(tmp_path, caplog):
    sink = Exploding(tmp_path, "run")
    guarded = GuardedLogger(sink, "exploding")
    with pytest.raises(TrackerFailed, match="logger=exploding failed in log_config: RuntimeError: tracker down"):
        guarded.log_config({"a": 1})
    guarded.log_scalars({"x": 1.0}, 1)  # dropped after its first error: nothing else reaches it
    with caplog.at_level(logging.WARNING, logger="mtlrun"):
        guarded.close("failed")
    assert sink.calls == ["log_config"]


def test_closing_a_failed_run_keeps_its_own_error(tmp_path, caplog):
    class BadClose(Exploding):
        def log_config(self, config):
            self.calls.append("log_config")

        def close(self, status):
            raise OSError("gone")

    with caplog.at_level(logging.WARNING, logger="mtlrun"):
        GuardedLogger(BadClose(tmp_path, "run"), "bad").close("interrupted")
    assert "logger=bad failed in close" in caplog.text
    with pytest.raises(TrackerFailed, match="failed in close"):
        GuardedLogger(BadClose(tmp_path, "run"), "bad").close("completed")


def test_preflight_names_the_key(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"logger.dir=.*file/sub cannot be created: .* is not a folder"):
        check_logger({"name": "csv", "dir": str(tmp_path / "file" / "sub")})
    with pytest.raises(ConfigError, match="logger.flush_secs=0 must be >= 1"):
        check_logger({"name": "tensorboard", "flush_secs": 0})
    with pytest.raises(ConfigError, match="names no database file"):
        check_logger({"name": "mlflow", "tracking_uri": "sqlite://"})
    with pytest.raises(ConfigError, match="port that is not a number"):
        check_logger({"name": "mlflow", "tracking_uri": "http://host:abc"})
    check_logger({"name": "csv", "dir": str(tmp_path / "new" / "deeper")})  # creatable: fine, and not created
    check_logger({"name": "mlflow", "tracking_uri": f"sqlite:///{tmp_path / 'm.db'}"})
    check_logger({"name": "mlflow", "tracking_uri": "postgresql+psycopg2://u@localhost/db"})
    check_logger({"name": "none"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_server_behind_a_proxy_is_left_to_the_trackers_start(monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="cannot be reached"):
        check_logger({"name": "mlflow", "tracking_uri": uri})
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "")
    check_logger({"name": "mlflow", "tracking_uri": uri})  # the proxy may reach it: no direct probe


def test_an_unset_tracking_uri_is_named_by_its_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nope://x")
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI=nope://x has an unknown scheme"):
        check_logger({"name": "mlflow", "tracking_uri": None})

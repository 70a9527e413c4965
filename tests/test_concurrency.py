"""Runs that start together: never one folder for two runs, one baseline trained once, no torn cache file."""

from __future__ import annotations

import json
import threading
import time
from importlib import resources
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from mtlrun.cli.folder_guard import CLAIM, _claim_or_exit, claim, release_if_created, resuming
from mtlrun.cli.resume import resuming_folder
from mtlrun.errors import ConfigError
from mtlrun.models import EncoderSpec
from mtlrun.results.baseline_cache import BaselineCache, CacheFileError
from mtlrun.train import baselines


def _together(n: int, work) -> list[object]:
    """Run ``work()`` in ``n`` threads released at the same moment; each result or exception."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work()
        except Exception as ex:
            results[i] = ex

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_run_and_sweep_folders_carry_microseconds():
    conf = yaml.safe_load((resources.files("mtlrun.conf") / "config.yaml").read_text(encoding="utf-8"))
    assert conf["hydra"]["run"]["dir"].endswith("${now:%H-%M-%S.%f}")
    assert conf["hydra"]["sweep"]["dir"].endswith("${now:%H-%M-%S.%f}")


def test_only_one_of_many_simultaneous_claims_wins(tmp_path):
    target = tmp_path / "outputs" / "same"
    results = _together(8, lambda: claim(target, overwrite=False, key="hydra.run.dir"))
    refused = [r for r in results if isinstance(r, ConfigError)]
    assert len(refused) == 7 and results.count(None) == 1
    assert all("another mtlrun process" in str(r) or "already holds" in str(r) for r in refused)
    assert (target / CLAIM).is_file()
    assert release_if_created(target, stop_at=tmp_path)  # a bad option gives the folder back
    assert not target.exists()


def test_a_claimed_folder_is_refused_but_a_resume_re_enters_it(tmp_path):
    target = tmp_path / "run"
    claim(target, overwrite=False, key="hydra.run.dir")
    with pytest.raises(ConfigError, match="already holds a run"):
        claim(target, overwrite=False, key="hydra.run.dir")
    with resuming_folder(target):
        assert resuming(target)  # the guard skips its claim: a resume re-enters
    with resuming_folder(tmp_path / "other"):
        assert not resuming(target)  # only its own folder
    assert not resuming(target)
    with pytest.raises(SystemExit):  # the guard itself refuses a fresh run there
        _claim_or_exit(target, False, "hydra.run.dir")


def _record(task: str) -> dict:
    return {"status": "completed", "task": task, "metrics": {"best": {"test": {"mae": 1.0}}}}


def _baseline_inputs(tmp_path: Path):
    cfg = OmegaConf.create({"dataset": {"name": "toy"}, "trainer": {"epochs": 1}, "seed": 0})
    encoder = EncoderSpec(name="mlp", input_shape=(4,), options={})
    return cfg, ["a", "b"], {"a": "mae", "b": "mae"}, encoder, BaselineCache(tmp_path / "cache")


def test_two_runs_needing_the_same_baseline_train_it_once(tmp_path, monkeypatch):
    calls: list[list[str]] = []

    def slow_training(cfg, data, tasks, primary, encoder, device, mode="auto"):
        calls.append(list(tasks))
        time.sleep(0.5)  # long enough for the other run to find the lock taken
        return {t: _record(t) for t in tasks}

    monkeypatch.setattr(baselines, "train_baselines", slow_training)
    cfg, tasks, primary, encoder, cache = _baseline_inputs(tmp_path)

    def resolve():
        return baselines.resolve_baselines(cfg, None, tasks, primary, encoder, torch.device("cpu"), cache, "train")

    results = _together(2, resolve)
    assert not any(isinstance(r, Exception) for r in results), results
    assert calls == [["a", "b"]]  # trained once; the other run waited and reused the files
    trained = sorted(len(r[2]) for r in results)  # type: ignore[index]
    assert trained == [0, 2]
    for key in results[0][1].values():  # type: ignore[index]
        assert json.loads(cache.path(key).read_text())["status"] == "completed"


def test_a_corrupt_cache_file_is_named_and_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "train_baselines", lambda *a, **k: pytest.fail("must not train"))
    cfg, tasks, primary, encoder, cache = _baseline_inputs(tmp_path)
    keys = baselines.baseline_keys(cfg, tasks, primary, encoder)
    cache.root.mkdir(parents=True)
    bad = cache.path(keys["b"])
    bad.write_text('{"status": "comp')
    with pytest.raises(CacheFileError, match=rf"{bad.name}: not valid JSON") as info:
        baselines.resolve_baselines(cfg, None, tasks, primary, encoder, torch.device("cpu"), cache, "train")
    assert "\n" not in str(info.value)
    assert bad.read_text() == '{"status": "comp'
    bad.write_text("[1, 2]")
    with pytest.raises(CacheFileError, match="holds a JSON list"):
        baselines.check_cache(cfg, tasks, primary, encoder, cache)


def _launch(cwd: Path, *args: str):
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("mtlrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [str(exe), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


QUICK = [
    "dataset=synthetic",
    "dataset.num_samples=300",
    "dataset.input_dim=8",
    "trainer.epochs=1",
    "diagnostics.every=0",
]


@pytest.mark.slow
def test_two_processes_one_folder_and_one_baseline(tmp_path):
    """Two real processes started together: one folder each, and the shared baselines trained once."""
    first, second = (_launch(tmp_path, *QUICK) for _ in range(2))
    outs = [p.communicate(timeout=600) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    folders = sorted(p.parent for p in tmp_path.glob("outputs/*-*-*/*/summary.json"))
    assert len(folders) == 2  # never one folder for both
    logs = [(f / "run.log").read_text() for f in folders]
    assert sum("training single-task baselines" in log for log in logs) == 1, logs
    cache = sorted((tmp_path / "outputs" / "baselines").glob("*.json"))
    assert len(cache) == 2 and all(json.loads(p.read_text())["status"] == "completed" for p in cache)

    same = [_launch(tmp_path, *QUICK, "report.baselines=false", "hydra.run.dir=same") for _ in range(2)]
    codes = sorted(p.wait(timeout=600) for p in same)
    assert codes == [0, 2]  # the second process is refused with one line, the first run is intact
    assert json.loads((tmp_path / "same" / "summary.json").read_text())["status"] == "completed"

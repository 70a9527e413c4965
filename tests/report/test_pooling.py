"""Which runs a report pools: its own sweep by default, never other code or other configs, one run per seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlrun.report.pooling import find_pool, identity
from tests.report.report_folders import make_job


@pytest.fixture
def two_sweeps(tmp_path: Path) -> Path:
    """``-m seed=0,1,2`` then ``-m arch=hps,mmoe seed=0`` in the same launch folder."""
    first = tmp_path / "multirun" / "2026-12-01" / "10-00-00"
    for seed in (0, 1, 2):
        make_job(first / str(seed), seed=seed, acc=0.6 + seed / 100, mae=1.0)
    second = tmp_path / "multirun" / "2026-12-01" / "11-00-00"
    make_job(second / "0", seed=0, acc=0.61, mae=1.1)
    make_job(second / "1", seed=0, acc=0.62, mae=1.2, arch="mmoe")
    return tmp_path


def names(pool, base: Path) -> list[str]:
    return [p.relative_to(base).as_posix() for p in pool.runs]


def test_a_second_sweep_pools_nothing_from_the_first(two_sweeps):
    job = two_sweeps / "multirun/2026-12-01/11-00-00/0"
    pool = find_pool(job, "sweep", [], two_sweeps)
    assert names(pool, two_sweeps) == ["multirun/2026-12-01/11-00-00/0"] and pool.dropped == []
    first = find_pool(two_sweeps / "multirun/2026-12-01/10-00-00/1", "sweep", [], two_sweeps)
    assert names(first, two_sweeps) == [f"multirun/2026-12-01/10-00-00/{s}" for s in (0, 1, 2)]


def test_a_single_run_pools_only_itself_by_default(tmp_path):
    job = make_job(tmp_path / "outputs/2026-12-01/10-00-00", seed=0, acc=0.6, mae=1.0, mode="RUN")
    make_job(tmp_path / "outputs/2026-12-01/10-05-00", seed=1, acc=0.6, mae=1.0, mode="RUN")
    assert find_pool(job, "sweep", [], tmp_path).runs == [job.resolve()]
    assert len(find_pool(job, "folder", [], tmp_path).runs) == 2
    assert find_pool(job, "none", ["outputs"], tmp_path).runs[1].name == "10-05-00"  # pool_from adds folders


def test_folder_pooling_keeps_one_run_per_seed_and_says_which(two_sweeps):
    job = two_sweeps / "multirun/2026-12-01/11-00-00/0"
    pool = find_pool(job, "folder", [], two_sweeps)
    assert names(pool, two_sweeps) == [
        "multirun/2026-12-01/11-00-00/0",  # the run itself keeps its seed
        "multirun/2026-12-01/10-00-00/1",
        "multirun/2026-12-01/10-00-00/2",
    ]
    [dropped] = pool.dropped
    assert dropped["folder"] == "multirun/2026-12-01/10-00-00/0" and dropped["seed"] == 0
    assert "duplicate of seed 0: kept multirun/2026-12-01/11-00-00/0" in dropped["reason"]


def test_never_pools_other_code_versions_or_other_configs(tmp_path):
    job = make_job(tmp_path / "multirun/d/s/0", seed=0, acc=0.6, mae=1.0)
    make_job(tmp_path / "multirun/d/s/1", seed=1, acc=0.6, mae=1.0, commit="0ther")
    make_job(tmp_path / "multirun/d/s/2", seed=2, acc=0.6, mae=1.0, lr=0.01)
    make_job(tmp_path / "multirun/d/s/3", seed=3, acc=0.6, mae=1.0, status="failed")
    pool = find_pool(job, "sweep", [], tmp_path)
    assert pool.runs == [job.resolve()]
    [dropped] = pool.dropped
    assert dropped["folder"] == "multirun/d/s/1" and "other code (commit 0ther" in dropped["reason"]


def test_identity_ignores_the_seed_and_recording_settings_only():
    config = {"seed": 0, "trainer": {"lr": 0.1, "device": "cpu"}, "report": {"alpha": 0.05}, "arch": {"name": "hps"}}
    same = {**config, "seed": 3, "trainer": {"lr": 0.1, "device": "cuda"}, "report": {"alpha": 0.01}}
    assert identity(config) == identity(same)
    assert identity(config) != identity({**config, "trainer": {"lr": 0.2, "device": "cpu"}})


def test_identity_leaves_out_new_trainer_keys_while_they_are_off():
    old = {"trainer": {"lr": 0.1}, "arch": {"name": "hps"}}
    off = {"precision": "32", "scheduler": "none", "min_lr": 0.0, "early_stopping": {"patience": 0}}
    new = {**old, "trainer": {"lr": 0.1, "threads": "4", "compile": True, **off}}
    assert identity(old) == identity(new)
    assert identity(old) != identity({**old, "trainer": {"lr": 0.1, **off, "scheduler": "cosine"}})
    assert identity(old) != identity({**old, "trainer": {"lr": 0.1, **off, "precision": "bf16"}})
    assert identity(old) != identity({**old, "trainer": {"lr": 0.1, **off, "early_stopping": {"patience": 2}}})

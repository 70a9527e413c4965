"""Runs in a loop: each ``mtlrun.fit`` leaves the process as it found it (cwd, argv, environment, the
caller's logging, torch's settings and random generators, Hydra's global instance), so the next run
is the run the command would make and the caller's code goes on undisturbed."""

from __future__ import annotations

import logging
import os
import random
import sys

import torch

import mtlrun
from tests.api.test_fit_errors import QUICK


def test_two_fits_in_one_process_give_two_folders_and_the_same_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    mine = logging.FileHandler(tmp_path / "mine.log", mode="w")  # mode "w": never reopened once closed
    root.addHandler(mine)
    before = (os.getcwd(), list(sys.argv), dict(os.environ), list(root.handlers), root.level)
    try:
        first = mtlrun.fit(overrides=QUICK)
        first_log = (first.folder / "run.log").read_text(encoding="utf-8")
        second = mtlrun.fit(overrides=QUICK)
        logging.getLogger("caller").warning("after the runs")
        mine.flush()
        after = (os.getcwd(), list(sys.argv), dict(os.environ), list(root.handlers), root.level)
    finally:
        root.removeHandler(mine)
        mine.close()
    assert first.folder != second.folder and first.metrics == second.metrics
    assert after == before
    assert "after the runs" in (tmp_path / "mine.log").read_text(encoding="utf-8")  # the caller's handler works
    assert (first.folder / "run.log").read_text(encoding="utf-8") == first_log  # nothing of run 2 in run 1's log
    second_log = (second.folder / "run.log").read_text(encoding="utf-8")
    assert second_log.count("training hps on synthetic") == 1 and "after the runs" not in second_log


def test_torch_settings_and_random_generators_are_put_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(2)
    torch._C._set_deterministic_algorithms(False)  # an earlier in-process run of this worker may have set it
    torch.manual_seed(123)
    random.seed(5)
    expected = (torch.rand(3), random.random())
    torch.manual_seed(123)
    random.seed(5)
    mtlrun.fit(overrides=[*QUICK, "trainer.threads=1", "trainer.deterministic=true", "seed=7"])
    assert torch.get_num_threads() == 2
    assert not torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ or os.environ.get("CUBLAS_WORKSPACE_CONFIG") == ":4096:8"
    drawn = (torch.rand(3), random.random())
    assert torch.equal(drawn[0], expected[0]) and drawn[1] == expected[1]


def test_a_callers_hydra_context_survives_compose_and_fit(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.chdir(tmp_path)
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        own = GlobalHydra.instance().hydra
        cfg = mtlrun.compose(overrides=QUICK)
        mtlrun.fit(cfg)
        assert GlobalHydra.instance().hydra is own
        assert compose(config_name="config", overrides=["seed=3"]).seed == 3
    assert not GlobalHydra.instance().is_initialized()

"""Settings that would do nothing are refused in one line, before the run folder exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mtlrun.config.inert import inert_settings
from mtlrun.config.schema import RunConf

INERT = [
    (["trainer.momentum=0.5"], "trainer.momentum=0.5", "trainer.optimizer=sgd"),
    (["report.baselines=false", "report.alpha=0.01"], "report.alpha=0.01", "report.baselines=false"),
    (["loader.mode=memory", "loader.num_workers=4"], "loader.num_workers=4", "loader.mode=dataloader"),
    (["diagnostics.every=0", "diagnostics.affinity=false"], "diagnostics.affinity=false", "diagnostics.every=0"),
    (
        ["schedule=curriculum", "schedule.start_epochs={sum:2}", "schedule.warmup_steps=5"],
        "schedule.warmup_steps=5",
        "schedule.order=difficulty",
    ),
    (["loader.prefetch_factor=4"], "loader.prefetch_factor=4", "loader.mode=auto, which keeps this data in memory"),
    # caught while composing, before the inert check: a key no schema has, weights nothing reads
    (["+trainer.amp=true"], "trainer.amp", "valid keys"),
    (["tasks.weights={sum:0.5}"], "tasks.weights", "balancer=fixed"),
]


def folders(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_dir()]


@pytest.mark.parametrize(
    ("overrides", "names", "hint"), INERT, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_an_inert_setting_is_one_line_and_leaves_no_folder(cli, overrides, names, hint):
    result = cli(*overrides, "trainer.epochs=1")
    assert result.code == 2, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert names in lines[0] and hint in lines[0], lines[0]
    assert "Traceback" not in result.err + result.out
    assert not any(p.name == "outputs" for p in folders(result.cwd)), folders(result.cwd)


@pytest.mark.parametrize(
    "settings",
    [
        {"trainer": {"optimizer": "sgd", "momentum": 0.5}},
        {"report": {"baselines": True, "alpha": 0.01}},
        {"loader": {"mode": "dataloader", "num_workers": 4}},
        {"loader": {"mode": "auto", "num_workers": 0}},  # auto may stream, so the option can count
        {"diagnostics": {"every": 10, "affinity": False}},
    ],
)
def test_settings_that_count_pass(settings):
    cfg = OmegaConf.merge(OmegaConf.structured(RunConf), settings)
    assert list(inert_settings(cfg)) == []


def test_defaults_are_not_inert():
    assert list(inert_settings(OmegaConf.structured(RunConf))) == []

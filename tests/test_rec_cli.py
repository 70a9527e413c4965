"""A click log through ``dataset=table`` as a new user runs it: esmm, aitm and mmoe in one sweep,
then the report, diagnostics, sweep summary and mtlrun-compare read it as they read any run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml

from mtlrun.report.compare import main as compare_main
from tests.conftest import run_subprocess

TASKS = (
    "dataset.tasks={click: {kind: binary, metrics: [auroc, gauc, logloss]}, "
    "conversion: {kind: binary, metrics: [auroc, gauc, logloss], given: click}}"
)


def click_log(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Users, items and two more categorical fields; a conversion only ever follows a click."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 30, n), rng.integers(0, 50, n)
    appeal = rng.normal(0, 1, 50)[items] + rng.normal(0, 1, 30)[users]
    click = rng.random(n) < 1 / (1 + np.exp(-appeal))
    conversion = click & (rng.random(n) < 0.4)
    return pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "category": rng.integers(0, 5, n),
            "device": rng.choice(["ios", "android", "web"], n),
            "click": click.astype(int),
            "conversion": conversion.astype(int),
        }
    )


def test_click_log_trains_under_esmm_aitm_and_mmoe_and_reports_auc_and_gauc(tmp_path, capsys):
    click_log().to_csv(tmp_path / "clicks.csv", index=False)
    result = run_subprocess(
        "-m",
        "dataset=table",
        "dataset.path=clicks.csv",
        TASKS,
        "dataset.group_by=user_id",
        "dataset.categorical=[user_id,item_id,category]",
        "arch=esmm,aitm,mmoe",
        "balancer=pcgrad",
        "trainer.epochs=1",
        "trainer.batch_size=64",
        "diagnostics.every=4",
        cwd=tmp_path,
    )
    assert result.code == 0, result.err[-3000:]
    folders = result.run_dirs()
    assert len(folders) == 3
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "completed"
        test = summary["metrics"]["best"]["test"]
        for task in ("click", "conversion"):
            assert {"auroc", "gauc", "logloss"} <= set(test[task]), (folder, test)
            assert 0 <= test[task]["gauc"] <= 1 and 0 <= test[task]["auroc"] <= 1
        assert {"auroc_given_click", "gauc_given_click"} <= set(test["conversion"])
        assert summary["directions"]["click"]["logloss"] is False
        report = (folder / "report.md").read_text()
        for task in ("click", "conversion"):
            assert f"| {task} | auroc |" in report and f"| {task} | gauc |" in report
        assert json.loads((folder / "diagnostics.json").read_text())
        assert json.loads((folder / "transfer.json").read_text())
    arches = {yaml.safe_load((f / ".hydra" / "config.yaml").read_text())["arch"]["name"] for f in folders}
    assert arches == {"esmm", "aitm", "mmoe"}
    sweep = folders[0].parent
    assert (sweep / "sweep_summary.json").is_file()
    capsys.readouterr()
    assert compare_main([str(sweep), "--by", "arch", "--format", "md", "--all-metrics"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in ("esmm", "aitm", "mmoe"))
    assert "click gauc" in table and "conversion auroc_given_click" in table

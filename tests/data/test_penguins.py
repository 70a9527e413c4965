"""Palmer penguins: three kinds of task, missing labels kept as NaN, errors on bad files, the CLI."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import torch

from mtlrun.data import DATASETS
from mtlrun.errors import ConfigError

TINY = ["trainer.epochs=1", "trainer.batch_size=32", "report.baselines=false", "diagnostics.every=0"]
PACKAGED = Path(str(resources.files("palmerpenguins").joinpath("data", "penguins.csv")))


def test_real_table_tasks_and_missing_labels():
    data = DATASETS.build("penguins", {})
    assert sum(len(s) for s in (data.train, data.val, data.test)) == 344
    assert {n: t.kind for n, t in data.tasks.items()} == {
        "species": "classification",
        "sex": "binary",
        "body_mass": "regression",
    }
    sex = torch.cat([s.targets["sex"] for s in (data.train, data.val, data.test)])
    mass = torch.cat([s.targets["body_mass"] for s in (data.train, data.val, data.test)])
    assert int(sex.isnan().sum()) == 11 and int(mass.isnan().sum()) == 2
    assert set(sex[~sex.isnan()].tolist()) == {0.0, 1.0} and (sex == 1).sum() == 168
    assert not data.train.x.isnan().any() and data.input_shape == (6,)  # 3 measures + 3 islands
    assert data.default_encoder == "mlp" and data.has_missing_labels
    assert 3000 < data.tasks["body_mass"].target_shift < 5500  # grams


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing file penguins.csv") as info:
        DATASETS.build("penguins", {"root": str(tmp_path)})
    assert "\n" not in str(info.value) and "pip install palmerpenguins" in str(info.value)
    table = pd.read_csv(PACKAGED)
    table.loc[3, "species"] = "Emperor"
    table.to_csv(tmp_path / "penguins.csv", index=False)
    with pytest.raises(ConfigError, match="column species holds Emperor; valid: Adelie, Chinstrap, Gentoo"):
        DATASETS.build("penguins", {"root": str(tmp_path), "verify": False})
    with pytest.raises(ConfigError, match="MD5"):
        DATASETS.build("penguins", {"root": str(tmp_path)})
    table.drop(columns="sex").head(40).to_csv(tmp_path / "penguins.csv", index=False)
    with pytest.raises(ConfigError, match="lacks the column"):
        DATASETS.build("penguins", {"root": str(tmp_path), "verify": False})


def test_cli_run_on_a_subsample(cli, tmp_path):
    """All three kinds through the real entry point (complete rows: masking missing labels is the trainer's job)."""
    pd.read_csv(PACKAGED).dropna().sample(60, random_state=0).to_csv(tmp_path / "penguins.csv", index=False)
    result = cli("dataset=penguins", f"dataset.root={tmp_path}", "dataset.verify=false", *TINY)
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed" and summary["run"]["tasks"] == ["species", "sex", "body_mass"]

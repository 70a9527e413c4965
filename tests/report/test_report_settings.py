"""The report: settings are checked in one line before a run starts."""

from __future__ import annotations

import copy

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from mtlrun.config.schema import register_schema, validate
from mtlrun.errors import ConfigError


@pytest.fixture(scope="module")
def default_config():
    register_schema()
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        return compose(config_name="config")


def with_values(config, **values):
    changed = copy.deepcopy(config)
    for key, value in values.items():
        OmegaConf.update(changed, key, value)
    return changed


def test_report_defaults_pool_the_sweep_with_holm_and_three_seeds(default_config):
    report = default_config.report
    assert (report.pool, report.correction, report.min_seeds, list(report.pool_from)) == ("sweep", "holm", 3, [])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("report.correction", "bonferroni", "report.correction"),
        ("report.pool", "everything", "report.pool"),
        ("report.min_seeds", 1, "report.min_seeds=1 must be >= 2"),
        ("report.pool_from", ["no/such/folder"], "report.pool_from: no such folder 'no/such/folder'"),
    ],
)
def test_bad_report_settings_fail_in_one_line(default_config, key, value, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        validate(with_values(default_config, **{key: value}))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_pool_from_accepts_an_existing_folder(default_config, tmp_path, monkeypatch):
    (tmp_path / "multirun").mkdir()
    monkeypatch.chdir(tmp_path)
    validate(with_values(default_config, **{"report.pool_from": ["multirun"], "report.pool": "none"}))

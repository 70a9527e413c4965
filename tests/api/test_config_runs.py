"""A config object runs as the overrides that compose it: ``mtlrun.compose``, edits, ``mtlrun.fit(cfg)``."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

import mtlrun
from mtlrun.api.config_overrides import config_overrides, override_value
from mtlrun.api.hydra_app import compose_in, container, hydra_app, job_config
from tests.api.test_fit_errors import QUICK


def overrides_of(config) -> list[str]:
    with hydra_app() as hydra:
        return config_overrides(hydra, config)


def composed(overrides: list[str]) -> dict:
    with hydra_app() as hydra:
        return container(job_config(compose_in(hydra, overrides)))


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["arch=mtan", "balancer=cagrad", "balancer.c=0.25"],
        ["dataset=synthetic", "dataset.correlation=0.3", "tasks.names=[t2]", "encoder=mlp", "encoder.hidden=[32,16]"],
        ["balancer=fixed", "tasks.weights={left:2,sum:0.05}", "objective=sum/mae"],
        ["experiment=mmoe_correlation"],
        ["report.cache_dir='my baselines/v1'", "report.groups=3", "tasks.primary={sum:rmse}", "trainer.lr=1e-5"],
        ["schedule=curriculum", "logger=csv", "seed=12"],
    ],
)
def test_a_composed_config_gives_overrides_that_compose_it_again(overrides):
    cfg = mtlrun.compose(overrides=overrides)
    found = overrides_of(cfg)
    assert composed(found) == container(cfg)
    assert len(found) <= len(overrides) + 6  # a group choice, then only the values it leaves different


def test_group_choices_are_found_by_name_and_values_stay_minimal():
    assert overrides_of(mtlrun.compose(overrides=["arch=mtan", "trainer.epochs=3"])) == [
        "arch=mtan",
        "trainer.epochs=3",
    ]
    assert overrides_of({"arch": {"name": "mmoe", "num_experts": 2}, "seed": 1}) == [
        "arch=mmoe",
        "arch.num_experts=2",
        "seed=1",
    ]
    assert overrides_of({}) == []


def test_a_loaded_runs_config_runs_again_as_its_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = mtlrun.fit(overrides=[*QUICK, "arch=mmoe", "arch.num_experts=2"])
    again = mtlrun.fit(first.config)
    assert again.config == first.config and again.metrics == first.metrics
    assert again.overrides == overrides_of(first.config)
    assert composed(again.overrides) == first.config


def test_an_edited_config_runs_with_its_edits_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = mtlrun.compose(overrides=QUICK)
    cfg.trainer.epochs = 2
    cfg.trainer.lr = 0.003
    result = mtlrun.fit(cfg, overrides=["hydra.run.dir=edited"])
    assert result.folder == (tmp_path / "edited").resolve()
    assert result.summary.epochs_completed == 2
    assert yaml.safe_load((result.folder / ".hydra" / "config.yaml").read_text()) == container(cfg)
    assert "trainer.epochs=2" in result.overrides and "trainer.lr=0.003" in result.overrides


@pytest.mark.parametrize(
    "config, overrides, says",
    [
        ({"trainer": {"nope": 1}}, None, "unknown key 'trainer.nope'"),
        ({"trainer": {"lr": -1.0}}, None, "trainer.lr=-1.0 must be > 0"),
        ({"arch": {"name": "nope"}}, None, "arch=nope is not valid; choose one of"),
        ({"seed": 1}, ["trainer.epochs=2"], "Hydra's own settings"),
        (["not", "a", "mapping"], None, "DictConfig or a mapping"),
    ],
)
def test_a_config_mistake_is_one_line_and_writes_nothing(config, overrides, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(mtlrun.ConfigError, match=says):
        mtlrun.fit(config, overrides=overrides)
    assert list(tmp_path.iterdir()) == []


def test_compose_checks_what_a_run_checks_before_its_folder():
    with pytest.raises(mtlrun.ConfigError, match="trainer.epochs=0"):
        mtlrun.compose(overrides=["trainer.epochs=0"])
    with pytest.raises(mtlrun.ConfigError, match="unknown key 'trainer.amp'"):
        mtlrun.compose(overrides=["+trainer.amp=true"])
    cfg = mtlrun.compose(overrides=["seed=4"])
    assert cfg.seed == 4 and "hydra" not in cfg and OmegaConf.is_struct(cfg)


@pytest.mark.parametrize(
    "value",
    [
        "mtan",
        "true",
        "1e5",
        "a b",
        "it's",
        "back\\slash\\",
        "quote\\'d",
        "${seed}",
        "",
        "x=y,z",
        0.1,
        -0.0,
        1e-300,
        float("inf"),
        None,
        True,
        3,
        [1, "two", None, [3.5]],
        {"left": 1, "sum": 0.05},
    ],
)
def test_values_are_written_as_overrides_that_read_back_exactly(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mtlrun.api.config_overrides import same

    text = override_value("key", value)
    assert same(OverridesParser.create().parse_override(f"key={text}").value(), value)

"""One source of defaults: the registered signatures. The generated structured configs must match
them, every group choice builds on its typed node, and every preset and sweep composes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from mtlrun.config import generate as config_gen
from mtlrun.config.options import OPTIONS
from mtlrun.config.schema import range_problems, register_schema, sweep_problems

CONF = Path(config_gen.__file__).resolve().parents[2] / "conf"
#: choices whose keys are the user's own (a Python dataset's arguments, a `_target_` class's options,
#: typed from the class at start-up by mtlrun.plugins.choices): no generated schema
UNTYPED = {("dataset", "python"), ("encoder", "python"), ("arch", "python"), ("balancer", "python")}
#: choices that are another choice with some options set (a name a sweep can list): they build on
#: that choice's typed node
ALIASES = {("balancer", "mgda_ub"): "mgda"}


def test_generated_options_match_the_registered_signatures():
    assert config_gen.TARGET.read_text(encoding="utf-8") == config_gen.render(), (
        "mtlrun/config/options.py is out of date: run `python -m mtlrun.config.generate`"
    )


@pytest.mark.parametrize("group", sorted(config_gen.GROUPS))
def test_every_choice_of_a_group_builds_on_its_typed_node(group):
    files = sorted((CONF / group).glob("*.yaml"))
    assert files
    for path in files:
        if (group, path.stem) in UNTYPED:
            continue
        name = ALIASES.get((group, path.stem), path.stem)
        assert (group, name) in OPTIONS, f"{path} has no registered component"
        assert f"/schema/{group}/{name}@_here_" in path.read_text(encoding="utf-8"), path


def test_an_alias_choice_is_its_component_with_options_set():
    cfg = _compose("balancer=mgda_ub")
    assert cfg.balancer.name == "mgda" and cfg.balancer.rep_grad is True


def _compose(*overrides: str):
    register_schema()
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_cfg_job_shows_every_option_of_a_choice_with_its_code_default():
    cfg = _compose("balancer=cagrad")
    import inspect

    from mtlrun.balancers.cagrad import CAGrad

    defaults = {
        n: p.default for n, p in inspect.signature(CAGrad.__init__).parameters.items() if n not in ("self", "tasks")
    }
    assert OmegaConf.to_container(cfg.balancer) == {"name": "cagrad", **defaults}


@pytest.mark.parametrize(
    "override, message",
    [("balancer.c=abc", "could not be converted to Float"), ("balancer.nope=1", "Key 'nope' not in")],
)
def test_a_wrong_type_or_key_fails_while_composing(override, message):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as info:
        _compose("balancer=cagrad", override)
    assert message in str(info.value.__cause__ or info.value)


PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_composes_with_values_only(name):
    cfg = _compose(f"experiment={name}")
    assert cfg.hydra.sweeper.params is None or not cfg.hydra.sweeper.params  # sweeps live in sweep/
    assert range_problems(cfg) == []  # its values lie inside the declared ranges


@pytest.mark.parametrize("name", SWEEPS)
def test_every_sweep_composes_and_selects_its_preset(name):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = _compose(f"sweep={name}")
    assert cfg.hydra.runtime.choices.experiment == name
    assert cfg.hydra.sweeper.params
    assert range_problems(cfg) == [] and sweep_problems(cfg) == []  # every value it sweeps lies inside its range

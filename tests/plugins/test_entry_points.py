"""Installed plugins (Python entry points): found lazily, described without importing, composed
with typed options, and a broken one breaks nothing but its own choice."""

from __future__ import annotations

import sys

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from mtlrun.config import builtin_choice, register_schema
from mtlrun.errors import ConfigError
from mtlrun.plugins import entry_points
from mtlrun.plugins.choices import prepare
from tests.plugins.helpers import PACKAGE, write_distribution


def _compose(*overrides: str, flags: tuple[str, ...] = ()):
    register_schema()
    rewritten = prepare(list(flags), list(overrides), builtin_choice)
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        return compose(config_name="config", overrides=rewritten)


def test_the_example_plugins_are_found_with_their_distribution(installed):
    found = {family: sorted(entry_points.installed(family)) for family in ("dataset", "encoder", "arch", "metric")}
    assert found == {"dataset": ["two_tasks"], "encoder": ["residual_mlp"], "arch": ["task_gates"], "metric": ["brier"]}
    (plugin,) = entry_points.installed("balancer")["lbtw"]
    assert plugin.distribution == "mtlrun-example-plugin 0.1.0"
    assert plugin.value == f"{PACKAGE}.balancers:LossBalancedTaskWeighting"


def test_help_lists_plugins_without_importing_them(installed):
    from mtlrun.help import render_help

    text = render_help()
    assert PACKAGE not in sys.modules
    line = next(line for line in text.splitlines() if line.strip().startswith("lbtw"))
    assert "Loss-balanced task weighting" in line and "[plugin: mtlrun-example-plugin 0.1.0]" in line
    assert any(line.strip().startswith("brier") for line in text.splitlines())


def test_a_plugin_choice_composes_typed_and_is_imported_only_when_chosen(installed):
    cfg = _compose("trainer.epochs=1")
    assert PACKAGE not in sys.modules  # listed (registered) but not chosen: not imported
    cfg = _compose("balancer=and_mask", "+balancer.agreement=0.5", "arch=task_gates")
    assert OmegaConf.to_container(cfg.balancer) == {
        "name": "and_mask",
        "agreement": 0.5,
        "scale_inverse_sparsity": False,
        "rep_grad": False,
    }
    assert OmegaConf.to_container(cfg.arch) == {"name": "task_gates", "reduction": 4}


def test_a_wrong_type_of_a_plugin_option_fails_while_composing(installed):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as info:
        _compose("balancer=lbtw", "balancer.alpha=abc")
    assert "could not be converted to Float" in str(info.value.__cause__ or info.value)


def test_a_plugin_reaches_its_family_registry(installed):
    from mtlrun.balancers import BALANCERS, LossWeighting

    cls = BALANCERS.get("lbtw")
    assert issubclass(cls, LossWeighting) and "lbtw" not in BALANCERS.names()
    balancer = BALANCERS.build("lbtw", {"name": "lbtw", "alpha": 1.0}, tasks=["a", "b"])
    assert balancer.alpha == 1.0


def test_a_broken_plugin_fails_only_when_chosen_naming_its_distribution(tmp_path, monkeypatch):
    write_distribution(tmp_path, {"mtlrun.balancers": {"broken": "no_such_module.balancers:Broken"}}, name="bad-pkg")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry_points.forget()
    try:
        cfg = _compose("balancer=ew")  # everyone else is unaffected
        assert cfg.balancer.name == "ew"
        from mtlrun.help import render_help

        line = next(line for line in render_help().splitlines() if line.strip().startswith("broken"))
        assert "cannot be loaded: no module named 'no_such_module.balancers'" in line and "bad-pkg 0.1.0" in line
        with pytest.raises(Exception) as info:
            _compose("balancer=broken")
        from mtlrun.cli import describe_error

        message = describe_error(info.value)
        assert message.startswith("balancer=broken: entry point 'broken = no_such_module.balancers:Broken'")
        assert "of bad-pkg 0.1.0 does not load: ModuleNotFoundError" in message and "\n" not in message
    finally:
        entry_points.forget()


def test_a_name_two_packages_declare_is_refused_and_a_built_in_name_stays_the_built_in(tmp_path, monkeypatch):
    target = "mtlrun.balancers.weighting:EqualWeighting"
    write_distribution(tmp_path / "a", {"mtlrun.balancers": {"twice": target, "ew": target}}, name="pkg-a")
    write_distribution(tmp_path / "b", {"mtlrun.balancers": {"twice": target + "X"}}, name="pkg-b")
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    entry_points.forget()
    try:
        with pytest.raises(ConfigError, match="balancer=twice is declared by more than one package: .*pkg-a.*pkg-b"):
            entry_points.find("balancer", "twice")
        cfg = _compose("balancer=ew")
        assert OmegaConf.to_container(cfg.balancer) == {"name": "ew"}
        from mtlrun.help import plugin_choices

        assert "hidden by the built-in ew" in plugin_choices("balancer", {"ew": "Equal weighting."})["ew "]
    finally:
        entry_points.forget()


def test_a_plain_run_never_reads_the_entry_points(monkeypatch):
    import importlib.metadata

    def refuse(**kwargs):
        raise AssertionError("entry points read for a run of built-ins")

    monkeypatch.setattr(importlib.metadata, "entry_points", refuse)
    entry_points.forget()
    cfg = _compose("balancer=pcgrad", "arch=mmoe", "seed=1")
    assert cfg.balancer.name == "pcgrad"
    with pytest.raises(AssertionError, match="entry points read"):
        _compose("balancer=my_method")  # not a built-in: it may be a plugin
    entry_points.forget()

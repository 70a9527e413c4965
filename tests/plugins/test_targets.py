"""Components by import path: ``GROUP._target_=pkg.mod.Name``, imported from the launch folder first,
typed from the signature, and every mistake one line before a run folder exists."""

from __future__ import annotations

import textwrap

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from mtlrun.config import builtin_choice, register_schema
from mtlrun.errors import ConfigError
from mtlrun.plugins.choices import prepare
from mtlrun.plugins.targets import chosen_name, import_object
from tests.plugins.helpers import PACKAGE, copy_package, forget_imports

BALANCER = f"balancer._target_={PACKAGE}.balancers.AndMask"


@pytest.fixture
def launch(tmp_path, monkeypatch):
    """A launch folder holding the example package (not installed anywhere)."""
    copy_package(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    forget_imports()
    yield tmp_path
    forget_imports()


def _compose(*overrides: str):
    register_schema()
    rewritten = prepare([], list(overrides), builtin_choice)
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        return compose(config_name="config", overrides=rewritten), rewritten


def test_the_launch_folder_comes_first(tmp_path, monkeypatch):
    for folder, value in (("launch", 1), ("elsewhere", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "shadowed_mod.py").write_text(f"VALUE = {value}\n")
    monkeypatch.setattr("sys.path", [str(tmp_path / "elsewhere"), *__import__("sys").path])
    monkeypatch.chdir(tmp_path / "launch")
    monkeypatch.delitem(__import__("sys").modules, "shadowed_mod", raising=False)
    assert import_object("shadowed_mod.VALUE", "balancer._target_") == 1
    monkeypatch.delitem(__import__("sys").modules, "shadowed_mod", raising=False)


@pytest.mark.parametrize(
    "source, path, message",
    [
        ("", "nowhere_at_all.Thing", "balancer._target_=nowhere_at_all.Thing does not import: ModuleNotFoundError"),
        ("X = 1\n", "broken_attr.Missing", "has no attribute or submodule 'Missing'"),
        ("raise RuntimeError('boom')\n", "broken_raise.Thing", "does not import: RuntimeError: boom"),
        ("", "justone", "balancer._target_=justone is not an import path; write package.module.Name"),
    ],
)
def test_a_target_that_does_not_import_is_one_line(tmp_path, monkeypatch, source, path, message):
    module = path.split(".")[0]
    if source:
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    with pytest.raises(ConfigError) as info:
        import_object(path, "balancer._target_")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_chosen_name_prefers_the_target():
    assert chosen_name({"name": "python", "_target_": "a.B"}) == "a.B"
    assert chosen_name({"name": "ew"}) == "ew"
    assert chosen_name({"_target_": "a.B"}) == "a.B"


def test_a_target_is_short_for_the_python_choice_and_its_node_is_typed(launch):
    cfg, rewritten = _compose(BALANCER, "+balancer.agreement=0.5", f"+arch._target_={PACKAGE}.archs.TaskGates")
    assert rewritten[:2] == ["balancer=python", f"balancer._target_={PACKAGE}.balancers.AndMask"]
    assert "++balancer.agreement=0.5" in rewritten and f"arch._target_={PACKAGE}.archs.TaskGates" in rewritten
    assert OmegaConf.to_container(cfg.balancer) == {
        "name": "python",
        "_target_": f"{PACKAGE}.balancers.AndMask",
        "agreement": 0.5,
        "scale_inverse_sparsity": False,
        "rep_grad": False,
    }
    assert OmegaConf.to_container(cfg.arch) == {
        "name": "python",
        "_target_": f"{PACKAGE}.archs.TaskGates",
        "reduction": 4,
    }
    cfg, _ = _compose("balancer=pcgrad")  # the next composition forgets the class
    assert cfg.balancer.name == "pcgrad"


def test_a_wrong_type_fails_while_composing(launch):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as info:
        _compose(BALANCER, "balancer.agreement=high")
    assert "could not be converted to Float" in str(info.value.__cause__ or info.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["balancer=pcgrad", BALANCER],
            "balancer=pcgrad and balancer._target_=mtlrun_example_plugin.balancers.AndMask",
        ),
        ([f"balancer._target_={PACKAGE}.balancers.AndMask,{PACKAGE}.balancers.X"], "a sweep over classes"),
    ],
)
def test_a_target_with_another_choice_or_as_a_sweep_is_refused(launch, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _compose(*overrides)


def test_options_without_a_config_default_are_still_checked(tmp_path, monkeypatch):
    (tmp_path / "odd_balancer.py").write_text(
        textwrap.dedent(
            """
            import torch
            from mtlrun.balancers import LossWeighting

            class Odd(LossWeighting):
                def __init__(self, tasks, scale: float, table: object = object()):
                    super().__init__(tasks)
                    self.scale = scale

                def weights(self, losses, ctx):
                    return torch.full_like(losses, self.scale)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    cfg, _ = _compose("balancer._target_=odd_balancer.Odd")
    assert OmegaConf.to_container(cfg.balancer) == {"name": "python", "_target_": "odd_balancer.Odd", "scale": "???"}

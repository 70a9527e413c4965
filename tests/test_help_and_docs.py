"""``mtlrun --help`` shows whole first sentences and each dataset's tasks; the README's documented
defaults are the config's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from mtlrun.cli.help import dataset_tasks, first_sentence, group_choices, render_help
from mtlrun.config.schema import register_schema

README = Path(__file__).resolve().parents[1] / "README.md"
GROUPS = ("dataset", "tasks", "encoder", "arch", "balancer", "schedule", "trainer", "logger", "experiment", "sweep")

#: the ways the README states a default: `key` ... (default V), `key` (V), `key=V` (default),
#: `key`: `V` (default), and the loader table's | `key` | `V` | rows
PATTERNS = (
    r"`(?P<key>[a-z_]+\.[a-z_.]+)`[^`\n(]{0,20}\(default (?P<value>[^;),\s]+)",
    r"`(?P<key>[a-z_]+\.[a-z_.]+)` \((?P<value>[0-9][0-9.]*)\)",
    r"`(?P<key>[a-z_.]+)=(?P<value>[^`\s]+)` \(default\)",
    r"`(?P<key>[a-z_.]+)`: `(?P<value>[^`]+)` \(default\)",
    r"^\| `(?P<key>[a-z_]+\.[a-z_.]+)` \| `?(?P<value>[^`|\s]+)`? \|",
)


def documented_defaults() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for pattern in PATTERNS:
        for match in re.finditer(pattern, text, flags=re.MULTILINE):
            found[match["key"]] = match["value"]
    return found


def composed(*overrides: str) -> dict:
    register_schema()
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        return OmegaConf.to_container(compose(config_name="config", overrides=list(overrides)), resolve=False)


def lookup(config: dict, key: str):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_every_documented_default_is_the_configs():
    documented = documented_defaults()
    # the parser must find the defaults a user reads most, or this test would check nothing
    assert {"diagnostics.every", "report.alpha", "report.min_seeds", "report.pool", "loader.num_workers"} <= set(
        documented
    ), documented
    default, nyuv2 = composed(), composed("dataset=nyuv2")
    checked = 0
    for key, value in documented.items():
        actual = lookup(default, key)
        if actual is KeyError:
            actual = lookup(nyuv2, key)  # dataset.verify: a benchmark's option
        assert actual is not KeyError, f"README documents {key}, which the config does not have"
        assert as_text(actual) == value, f"README says {key} defaults to {value}; the config has {actual}"
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("group", GROUPS)
def test_every_choice_has_a_whole_first_sentence(group):
    choices = group_choices(group)
    assert choices
    for name, description in choices.items():
        assert description, f"{group}={name} has no description"
        assert description[-1] in ".!?)", f"{group}={name}: '{description}' stops mid-sentence"


def test_a_description_spanning_lines_is_shown_whole():
    assert group_choices("dataset")["multi_digits"].endswith("side by side with random overlap, MultiMNIST-style.")
    assert first_sentence("MMoE (Ma et al., KDD 2018): tasks t1..tK, e.g. three. More.") == (
        "MMoE (Ma et al., KDD 2018): tasks t1..tK, e.g. three."
    )


def test_help_names_each_datasets_tasks():
    tasks = dataset_tasks()
    assert set(tasks) == set(group_choices("dataset"))
    assert all(tasks.values()), [name for name, line in tasks.items() if not line]
    text = render_help()
    assert "tasks: left, right (10 classes), sum (regression), parity (binary)" in text


def test_the_tasks_line_of_a_built_in_dataset_names_its_tasks():
    from mtlrun.data import DATASETS

    declared = DATASETS.build("multi_digits", {}).tasks
    line = dataset_tasks()["multi_digits"]
    assert [t for t in declared if t in line] == list(declared)


@pytest.mark.parametrize(
    "registry_path",
    ["mtlrun.data:DATASETS", "mtlrun.models:ARCHS", "mtlrun.models:ENCODERS", "mtlrun.balancers:BALANCERS"],
)
def test_the_readme_names_every_registered_method(registry_path):
    import importlib

    module, _, name = registry_path.partition(":")
    registry = getattr(importlib.import_module(module), name)
    text = README.read_text(encoding="utf-8")
    missing = [choice for choice in registry.names() if f"`{choice}`" not in text]
    assert not missing, f"README.md does not name these {registry.group} choices: {missing}"


def test_contributing_names_every_sub_package():
    import pkgutil

    import mtlrun

    text = (README.parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    rooms = [m.name for m in pkgutil.iter_modules(mtlrun.__path__) if m.ispkg]
    missing = [room for room in rooms if f"`{room}/`" not in text]
    assert not missing, f"CONTRIBUTING.md's package map misses: {missing}"

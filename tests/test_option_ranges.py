"""Every numeric option declares its range once; ``validate``, sweeps, ``--cfg job`` and docs/options.md
read that declaration, and a value just outside it is one line naming the key and the range."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from mtlrun.config import options_doc
from mtlrun.config.option_ranges import RANGES
from mtlrun.config.options import OPTIONS
from mtlrun.config.ranges import Range, annotate_yaml, check_plugin_ranges, range_of, ranges_of
from mtlrun.config.schema import RunConf, range_problems, register_schema, sweep_problems, validate
from mtlrun.errors import ConfigError
from mtlrun.registry import check_declared_ranges

ROOT = Path(__file__).resolve().parents[1]


def _fields(schema: type, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    found = []
    for f in dataclasses.fields(schema):
        inner = f.default_factory if callable(f.default_factory) else None
        if inner is not None and dataclasses.is_dataclass(inner):
            found += _fields(inner, f"{prefix}{f.name}.")
        else:
            found.append((prefix + f.name, f))
    return found


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if callable(f.default_factory) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(f: dataclasses.Field) -> bool:
    """An int or float option (also Optional or a list), or an untyped one whose default is numeric."""
    kind = str(f.type)
    if "int" in kind or "float" in kind:
        return True
    value = _default(f)
    return _is_number(value) or isinstance(value, list) and bool(value) and all(map(_is_number, value))


#: (where, group, choice, key, field): every option, of the run and of each group choice
ALL_OPTIONS = [("run", None, None, key, f) for key, f in _fields(RunConf)] + [
    (f"{group}={choice}", group, choice, f"{group}.{key}", f)
    for (group, choice), schema in OPTIONS.items()
    for key, f in _fields(schema)
    if key != "name"
]


def test_every_numeric_option_of_every_component_declares_a_range():
    missing = [f"{where}: {key}" for where, _, _, key, f in ALL_OPTIONS if _numeric(f) and range_of(f) is None]
    assert not missing, f"declare a range in mtlrun/config/option_ranges.py (or schema.py) for: {missing}"


def test_every_declared_range_names_an_option_that_exists():
    for (group, choice), declared in RANGES.items():
        assert (group, choice) in OPTIONS, f"{group}={choice} is not a registered component"
        names = {f.name for f in dataclasses.fields(OPTIONS[(group, choice)])}
        assert set(declared) <= names, f"{group}={choice}: no option {sorted(set(declared) - names)}"
        # and options.py carries exactly these (the generator copies them)
        assert dict(ranges_of(OPTIONS[(group, choice)])) == declared


def test_every_default_lies_inside_its_range():
    bad = [
        f"{key}={_default(f)}"
        for _, _, _, key, f in ALL_OPTIONS
        if range_of(f) and range_of(f).problem(key, _default(f))
    ]
    assert not bad


def test_every_shipped_yaml_value_lies_inside_its_range():
    """conf/<group>/<choice>.yaml may set an option's value: it obeys the declared range too."""
    for (group, choice), schema in OPTIONS.items():
        path = ROOT / "conf" / group / f"{choice}.yaml"
        if not path.exists():
            continue
        values = OmegaConf.to_container(OmegaConf.load(path))
        for key, declared in ranges_of(schema):
            if isinstance(values, dict) and key in values:
                assert declared.problem(f"{group}.{key}", values[key]) is None, path


def _is_int(f: dataclasses.Field) -> bool:
    return "int" in str(f.type) or str(f.type) == "Any" and "float" not in str(f.type)


def _cases() -> list[Any]:
    """For each ranged option and each side of its range: a value just outside and one just inside."""
    cases = []
    for where, group, choice, key, f in ALL_OPTIONS:
        declared = range_of(f)
        if declared is None:
            continue
        integer = _is_int(f)
        step = 1 if integer else 1e-6
        sides: list[tuple[str, Any, Any]] = []
        if declared.choices:
            sides.append(("choice", max(declared.choices) + 1, declared.choices[0]))
        elif declared.low is None and declared.high is None:
            sides.append(("finite", math.inf, 0.0))
        if declared.ge is not None:
            sides.append(("low", declared.ge - step, declared.ge))
        if declared.gt is not None:
            sides.append(("low", declared.gt, declared.gt + step))
        if declared.le is not None:
            sides.append(("high", declared.le + step, declared.le))
        if declared.lt is not None:
            sides.append(("high", declared.lt, declared.lt - step))
        as_list = "List" in str(f.type) or isinstance(_default(f), list)
        for side, outside, inside in sides:
            if integer:
                outside, inside = int(outside), int(inside)
            if as_list:
                outside, inside = [outside], [inside]
            cases.append(pytest.param(group, choice, key, declared, outside, inside, id=f"{where}:{key}:{side}"))
    return cases


@pytest.fixture(scope="module")
def base_config():
    register_schema()
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        return compose(config_name="config", overrides=["report.baselines=false"])


def _config_with(base, group: str | None, choice: str | None, key: str, value: Any):
    cfg = base.copy()
    if group is not None:
        cfg[group] = OmegaConf.structured(OPTIONS[(group, choice)])
    OmegaConf.update(cfg, key, value)
    return cfg


@pytest.mark.parametrize(("group", "choice", "key", "declared", "outside", "inside"), _cases())
def test_a_value_just_outside_the_range_is_refused_and_one_inside_accepted(
    base_config, group, choice, key, declared, outside, inside
):
    with pytest.raises(ConfigError) as info:
        validate(_config_with(base_config, group, choice, key, outside))
    message = str(info.value)
    assert "\n" not in message
    assert f"{key}{'[0]' if isinstance(outside, list) else ''}=" in message, message
    assert declared.requirement() in message or declared.text() in message, message
    inside_cfg = _config_with(base_config, group, choice, key, inside)
    assert range_problems(inside_cfg) == []
    validate(inside_cfg)


def test_every_problem_is_named_in_the_one_line(base_config):
    cfg = _config_with(base_config, "encoder", "mlp", "encoder.dropout", 1.5)
    OmegaConf.update(cfg, "trainer.lr", 0.0)
    with pytest.raises(ConfigError, match=r"^trainer.lr=0.0 must be > 0; encoder.dropout=1.5 must be in \[0, 1\)$"):
        validate(cfg)


def test_a_non_finite_value_is_named_as_such(base_config):
    cfg = _config_with(base_config, None, None, "trainer.lr", math.inf)
    with pytest.raises(ConfigError, match=r"trainer.lr=inf must be a finite number > 0$"):
        validate(cfg)


@pytest.mark.parametrize(
    ("declared", "text", "requirement"),
    [
        (Range(ge=0, lt=1), "[0, 1)", "must be in [0, 1)"),
        (Range(gt=0, le=1), "(0, 1]", "must be in (0, 1]"),
        (Range(gt=0), "> 0", "must be > 0"),
        (Range(ge=0, note="0 = off"), ">= 0", "must be >= 0 (0 = off)"),
        (Range(le=1.5), "<= 1.5", "must be <= 1.5"),
        (Range(choices=(0, 1, 2)), "one of 0, 1, 2", "must be one of 0, 1, 2"),
        (Range(), "any finite number", "must be a finite number"),
    ],
)
def test_range_text(declared, text, requirement):
    assert declared.text() == text and declared.requirement() == requirement
    assert eval(declared.source(), {"Range": Range}) == declared  # what the generator writes reads back


def test_a_range_takes_one_bound_per_side():
    with pytest.raises(TypeError):
        Range(ge=0, gt=0)


# -- sweeps: every value a sweep gives, before its folder exists ----------------------------


def _sweep(*task: str, params: dict | None = None, **groups: str):
    return OmegaConf.create(
        {
            "hydra": {"overrides": {"task": list(task)}, "sweeper": {"params": params}},
            **{group: {"name": name} for group, name in {"encoder": "auto", **groups}.items()},
        }
    )


@pytest.mark.parametrize(
    ("config", "problems"),
    [
        (_sweep("trainer.lr=0.1,0", "seed=0,1"), ["trainer.lr=0 must be > 0"]),
        (_sweep("encoder.dropout=0.1,1.5", encoder="mlp"), ["encoder.dropout=1.5 must be in [0, 1)"]),
        (_sweep("encoder=mlp,lenet", "encoder.dropout=0.1,1.5"), ["encoder.dropout=1.5 must be in [0, 1)"]),
        (_sweep("encoder=cnn,resnet18", "encoder.dropout=2"), []),  # neither takes a dropout: Hydra says so
        (_sweep("trainer.epochs=range(0,3)"), ["trainer.epochs=0 must be >= 1"]),
        (
            _sweep("trainer.lr=tag(log, interval(0.0, 0.1))"),
            ["trainer.lr=0.0 must be > 0 (an end of trainer.lr=interval(0.0, 0.1))"],
        ),
        (_sweep(params={"report.alpha": "0.05,1.0"}), ["report.alpha=1.0 must be in (0, 1)"]),
        (_sweep("trainer.lr=0.1", "seed=0,1"), []),
    ],
)
def test_a_sweep_value_outside_its_range_is_found_before_any_job(config, problems):
    assert sweep_problems(config) == problems


def test_a_sweep_with_an_out_of_range_value_is_refused_in_one_line_without_a_folder(cli, tmp_path):
    result = cli("-m", "encoder=mlp", "encoder.dropout=0.1,1.5", "trainer.epochs=1")
    assert result.code == 2 and result.err == "mtlrun: error: encoder.dropout=1.5 must be in [0, 1)\n"
    assert not any(tmp_path.iterdir())  # no sweep folder, no job


def test_a_run_with_an_out_of_range_value_is_refused_in_one_line_without_a_folder(tmp_path):
    from tests.conftest import run_subprocess

    result = run_subprocess("encoder=mlp", "encoder.dropout=1.5", "trainer.epochs=1", cwd=tmp_path)
    assert result.code == 2 and result.err == "mtlrun: error: encoder.dropout=1.5 must be in [0, 1)\n", result.err
    assert not any(tmp_path.iterdir())


# -- what the user reads: --cfg job, docs/options.md ------------------------------------------


def test_cfg_job_shows_each_range_as_a_comment_and_stays_the_same_yaml(tmp_path):
    from tests.conftest import run_subprocess

    # a new process: Hydra's --cfg leaves its HydraConfig set, which would follow an in-process call
    result = run_subprocess("--cfg", "job", "encoder=mlp", "trainer.lr=0.01", cwd=tmp_path)
    assert result.code == 0, result.err
    assert "  dropout: 0.0  # [0, 1)\n" in result.out and "  lr: 0.01  # > 0\n" in result.out
    assert "  grad_clip: 0.0  # >= 0 (0 = off)\n" in result.out
    assert "  optimizer: adam\n" in result.out  # no range, no comment
    plain = result.out.replace("  # ", "\n# ")  # the same text without the comments on the lines
    assert yaml.safe_load(result.out) == yaml.safe_load(plain)
    assert yaml.safe_load(result.out)["encoder"] == {"name": "mlp", "hidden": [128, 64], "dropout": 0.0}
    assert result.err == ""


def test_cfg_job_prints_an_out_of_range_config_and_says_a_run_would_be_refused(tmp_path):
    from tests.conftest import run_subprocess

    result = run_subprocess("--cfg", "job", "encoder=mlp", "encoder.dropout=1.5", cwd=tmp_path)
    assert result.code == 0 and "  dropout: 1.5  # [0, 1)\n" in result.out
    assert result.err == (
        "mtlrun: warning: encoder.dropout=1.5 must be in [0, 1) (a run with this config is refused)\n"
    )


def test_annotate_yaml_follows_nesting():
    text = "trainer:\n  lr: 0.1\n  early_stopping:\n    patience: 0\nlr: 3\n"
    ranges = {"trainer.lr": Range(gt=0), "trainer.early_stopping.patience": Range(ge=0, note="0 = off")}
    assert annotate_yaml(text, ranges) == (
        "trainer:\n  lr: 0.1  # > 0\n  early_stopping:\n    patience: 0  # >= 0 (0 = off)\nlr: 3\n"
    )


def test_docs_options_table_matches_the_declarations():
    assert options_doc.DOC.read_text(encoding="utf-8") == options_doc.render(), (
        "docs/options.md is out of date: run `python -m mtlrun.config.generate`"
    )
    text = options_doc.DOC.read_text(encoding="utf-8")
    assert "| `encoder.dropout` | float | `0.0` | [0, 1) |" in text
    assert "| `trainer.lr` | float | `0.001` | > 0 |" in text
    assert "docs/options.md" in (ROOT / "README.md").read_text(encoding="utf-8")


# -- components built from Python and users' components ---------------------------------------


def test_building_a_component_checks_its_declared_ranges():
    from mtlrun.models import ENCODERS

    with pytest.raises(ConfigError, match=r"^encoder.dropout=1.5 must be in \[0, 1\)$"):
        ENCODERS.build("mlp", {"dropout": 1.5}, input_shape=(4,))


class Scaled:
    """A user's balancer-like class declaring its option's range in its signature."""

    def __init__(self, tasks: list[str], scale: Annotated[float, Range(gt=0)] = 1.0, steps: int = 1) -> None:
        self.scale = scale


def test_a_users_class_declares_ranges_with_annotated():
    with pytest.raises(ConfigError, match=r"^balancer.scale=0 must be > 0$"):
        check_plugin_ranges("balancer", Scaled, {"scale": 0})
    check_plugin_ranges("balancer", Scaled, {"scale": 2.0, "steps": -1})  # steps declares nothing
    with pytest.raises(ConfigError, match=r"balancer.scale=-1 must be > 0"):
        check_declared_ranges("balancer", "my_pkg.Scaled", Scaled, {"scale": -1})


def _balancer_inside_cases() -> list[Any]:
    return [
        pytest.param(choice, key.split(".", 1)[1], inside, id=f"{choice}.{key.split('.', 1)[1]}={inside}")
        for param in _cases()
        for group, choice, key, _declared, _outside, inside in [param.values]
        if group == "balancer" and not isinstance(inside, list)
    ]


@pytest.mark.parametrize(("choice", "option", "value"), _balancer_inside_cases())
def test_a_balancer_builds_at_each_edge_of_its_declared_range(choice, option, value):
    """The declaration refuses nothing the method accepts: each balancer builds at its ranges' edges."""
    from mtlrun.balancers import BALANCERS

    if choice == "torchjd":
        pytest.importorskip("torchjd")
    BALANCERS.build(choice, {option: value}, tasks=["a", "b"])

"""The package face: ``import mtlrun`` stays cheap, and each name of the Python API loads on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import mtlrun

HEAVY = ("torch", "hydra", "omegaconf", "numpy", "rich", "yaml")


def loaded_after(statement: str) -> dict[str, bool]:
    code = f"import json, sys\n{statement}\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_mtlrun_loads_neither_torch_nor_hydra():
    loaded = loaded_after("import mtlrun\nassert mtlrun.__version__")
    assert not any(loaded.values()), [m for m, yes in loaded.items() if yes]


def test_reading_run_folders_needs_no_torch_nor_hydra():
    loaded = loaded_after("import mtlrun\nmtlrun.load_run, mtlrun.RunResult, mtlrun.TransferReport, mtlrun.RunFailed")
    assert not loaded["torch"] and not loaded["hydra"]


def test_every_public_name_resolves_and_is_listed():
    assert set(mtlrun.__all__) == {"__version__", *mtlrun._API}
    for name in mtlrun.__all__:
        assert getattr(mtlrun, name) is not None, name
    assert set(mtlrun.__all__) <= set(dir(mtlrun))
    assert mtlrun.ConfigError is __import__("mtlrun.errors").errors.ConfigError
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mtlrun.nope  # noqa: B018


def test_the_version_has_one_source():
    from importlib.metadata import version

    from mtlrun.train.run import versions

    assert mtlrun.__version__ == version("mtlrun") == versions()["mtlrun"]


def test_error_types_carry_the_commands_exit_statuses():
    from mtlrun.cli import task
    from mtlrun.errors import CONFIG_EXIT, DIVERGED_EXIT, FAILED_EXIT

    assert task.DIVERGED_EXIT == mtlrun.RunDiverged.exit_code == DIVERGED_EXIT == 3
    assert mtlrun.RunFailed.exit_code == mtlrun.SweepFailed.exit_code == FAILED_EXIT == 1
    assert mtlrun.ConfigError.exit_code == CONFIG_EXIT == 2
    assert issubclass(mtlrun.RunInterrupted, KeyboardInterrupt)

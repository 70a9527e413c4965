"""The configs ship inside the package (a non-editable install finds them too)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_config_folder_is_a_listed_package():
    packages = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for folder in (ROOT / "conf").rglob("*"):
        if folder.is_dir() and any(folder.glob("*.yaml")):
            dotted = "mtlrun.conf." + ".".join(folder.relative_to(ROOT / "conf").parts)
            assert dotted in packages, dotted
            assert (folder / "__init__.py").exists(), folder
    for folder in (ROOT / "mtlrun").rglob("*"):
        if folder.is_dir() and any(folder.glob("*.py")):
            assert ".".join(folder.relative_to(ROOT).parts) in packages, folder


def test_wheel_contains_every_yaml(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("mtlrun-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"mtlrun/conf/" + p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    assert expected <= names, expected - names


@pytest.mark.slow
def test_non_editable_install_runs_outside_the_checkout(tmp_path):
    """``pip install .`` (a real wheel build) into its own folder, then ``mtlrun`` from elsewhere."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(ROOT)], check=True
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import mtlrun; print(mtlrun.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip().startswith(str(target)), where.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "mtlrun", "trainer.epochs=1", "tasks=digits_left_right", "report.baselines=false"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(work.glob("outputs/*/*/summary.json"))

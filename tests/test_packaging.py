"""The configs ship inside the package (a non-editable install finds them too)."""

from __future__ import annotations

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
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", "--no-deps", "--no-build-isolation", str(ROOT)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run(
        [str(venv / "bin" / "mtlrun"), "trainer.epochs=1", "tasks=digits_left_right"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(work.glob("outputs/*/*/summary.json"))

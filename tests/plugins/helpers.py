"""The example plugin package (examples/plugin), put where Python finds it: as a module in a
launch folder, or "installed" as a distribution whose entry points importlib.metadata reads."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin"
PACKAGE = "mtlrun_example_plugin"
#: a tiny, fast run of the example dataset
TINY = ["trainer.epochs=1", "trainer.batch_size=64", "diagnostics.every=0", "+dataset.n=160"]


def copy_package(folder: Path) -> Path:
    """The example's module folder inside ``folder`` (a launch folder for ``_target_``)."""
    shutil.copytree(EXAMPLE / PACKAGE, folder / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    return folder / PACKAGE


def write_distribution(
    folder: Path, entry_points: dict[str, dict[str, str]] | None = None, name: str = "mtlrun-example-plugin"
) -> None:
    """What ``pip install --target folder`` leaves of a distribution: its ``.dist-info`` with the
    entry points (those of examples/plugin/pyproject.toml unless given)."""
    if entry_points is None:
        project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        entry_points = project["entry-points"]
    info = folder / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n", encoding="utf-8")
    lines = []
    for group, names in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in names.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")


def forget_imports() -> None:
    for module in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[module]


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example plugin "installed" in-process: its package and dist-info on ``sys.path``."""
    from mtlrun.plugins import entry_points

    site = tmp_path / "site"
    site.mkdir()
    copy_package(site)
    write_distribution(site)
    monkeypatch.syspath_prepend(str(site))
    forget_imports()
    entry_points.forget()
    yield site
    forget_imports()
    entry_points.forget()

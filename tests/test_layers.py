"""The package's import graph: no cycle, and the layers of DESIGN.md (report never imports training)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("mtlrun", include_external_packages=False)


def test_the_import_graph_has_no_cycle(graph):
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join([module, *back]))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_report_imports_no_training_side_code(graph):
    forbidden = ("mtlrun.train", "mtlrun.balancers", "mtlrun.models", "mtlrun.data")
    bad = [
        (module, imported)
        for module in graph.find_children("mtlrun.report") | {"mtlrun.report"}
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.startswith(forbidden)
    ]
    assert not bad


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([exe], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]


#: the modules allowed directly under mtlrun/: the package face and what every layer may use
TOP_LEVEL = {"mtlrun", "mtlrun.__main__", "mtlrun.errors", "mtlrun.registry", "mtlrun.lazy"}


def _layers() -> list[list[str]]:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    contracts = pyproject["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [[name.strip() for name in layer.replace(":", "|").split("|")] for layer in layers]


def test_only_the_face_errors_registry_and_lazy_imports_sit_at_the_top(graph):
    loose = {m for m in graph.modules if m.count(".") == 1 and not graph.find_children(m)} - TOP_LEVEL
    assert not loose, f"modules directly under mtlrun/ that belong in a sub-package: {sorted(loose)}"


def test_the_layers_contract_covers_every_module(graph):
    roots = [name for layer in _layers() for name in layer]
    uncovered = sorted(
        m for m in graph.modules if m != "mtlrun" and not any(m == r or m.startswith(r + ".") for r in roots)
    )
    assert not uncovered, f"modules in no layer of pyproject's layers contract: {uncovered}"

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

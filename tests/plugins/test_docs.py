"""docs/plugins.md shows the example package as it is, and its first command runs as written."""

from __future__ import annotations

import re
import shlex

from tests.plugins.helpers import EXAMPLE, PACKAGE, copy_package, forget_imports

DOCS = EXAMPLE.parents[1] / "docs" / "plugins.md"
README = EXAMPLE.parents[1] / "README.md"
FAST = ["trainer.epochs=1", "trainer.batch_size=64", "diagnostics.every=0", "report.baselines=false", "+dataset.n=160"]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def test_every_example_file_is_shown_whole_and_unchanged():
    shown = {}
    for block in _blocks("python"):
        first, _, body = block.partition("\n")
        assert first.startswith("# file: "), first
        shown[first[len("# file: ") :]] = body
    modules = {str(p.relative_to(EXAMPLE)) for p in (EXAMPLE / PACKAGE).glob("*.py") if p.name != "__init__.py"}
    assert set(shown) == modules
    for path, body in shown.items():
        assert body == (EXAMPLE / path).read_text(encoding="utf-8"), path
    (toml,) = _blocks("toml")
    pyproject = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    assert all(line in pyproject for line in toml.splitlines()[1:])


def test_the_readme_links_the_plugin_docs():
    assert "(docs/plugins.md)" in README.read_text(encoding="utf-8")


def test_the_import_path_command_runs_as_written(cli, tmp_path):
    script = _blocks("bash")[0].replace("\\\n", " ")
    (line,) = [line for line in script.splitlines() if line.strip().startswith("mtlrun ")]
    args = shlex.split(line)[1:]
    copy_package(tmp_path)
    forget_imports()
    result = cli(*args, *FAST, cwd=tmp_path)
    forget_imports()
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["run"]["balancer"] == f"{PACKAGE}.balancers.AndMask"
    assert summary["encoder"]["width"] == 32 and "BrierScore" in summary["directions"]["sign"]

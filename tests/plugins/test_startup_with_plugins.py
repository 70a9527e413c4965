"""Installed plugins cost nothing at start-up: --help lists them without torch, and a run of
built-ins (here --cfg job) never reads the entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.plugins.helpers import copy_package, write_distribution


def _modules_after(args: list[str], env: dict[str, str], cwd) -> dict[str, bool]:
    code = (
        "import contextlib, io, json, sys\n"
        f"sys.argv = ['mtlrun', *{args!r}]\n"
        "from mtlrun.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main()\n"
        "print(json.dumps({m: m in sys.modules for m in ('torch', 'importlib.metadata', 'mtlrun_example_plugin')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_lists_plugins_without_importing_torch_or_them(tmp_path):
    copy_package(tmp_path)
    write_distribution(tmp_path)
    loaded = _modules_after(["--help"], {"PYTHONPATH": str(tmp_path)}, tmp_path)
    assert loaded == {"torch": False, "importlib.metadata": True, "mtlrun_example_plugin": False}


def test_a_run_of_built_ins_does_not_read_the_entry_points(tmp_path):
    copy_package(tmp_path)
    write_distribution(tmp_path)
    loaded = _modules_after(["--cfg", "job", "balancer=pcgrad"], {"PYTHONPATH": str(tmp_path)}, tmp_path)
    assert loaded == {"torch": False, "importlib.metadata": False, "mtlrun_example_plugin": False}

"""Shared fixtures: run the real ``mtlrun`` entry point in-process (fast) or as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

#: keeps end-to-end runs tiny: few epochs, few samples
TINY = ["trainer.epochs=2", "trainer.batch_size=64"]
TINY_SYNTHETIC = ["dataset=synthetic", "dataset.num_samples=1200", "dataset.input_dim=16", *TINY]


@dataclass
class CliResult:
    code: int
    out: str
    err: str
    cwd: Path

    def run_dirs(self) -> list[Path]:
        """Every run folder (one with a summary.json) created under cwd, oldest first."""
        return sorted(p.parent for p in self.cwd.glob("**/summary.json") if ".hydra" not in p.parts)

    def summary(self) -> dict:
        dirs = self.run_dirs()
        assert dirs, f"no run folder; stderr:\n{self.err}\nstdout:\n{self.out}"
        return json.loads((dirs[-1] / "summary.json").read_text())


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Call ``mtlrun.cli.main.main`` with ``args`` in a fresh working folder, like the console script."""
    from mtlrun.cli.main import main

    def invoke(*args: str, cwd: Path | None = None) -> CliResult:
        where = cwd or tmp_path
        monkeypatch.chdir(where)
        monkeypatch.setattr(sys, "argv", ["mtlrun", *args])
        monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
        code = 0
        try:
            main()
        except SystemExit as ex:
            code = ex.code if isinstance(ex.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err, where)

    return invoke


def run_subprocess(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> CliResult:
    """Run the installed ``mtlrun`` console script (the real thing, new process)."""
    exe = Path(sys.executable).with_name("mtlrun")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "mtlrun"]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr, cwd)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped, with the reason, on a machine without CUDA."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is false); run bench/gpu.sh on one")
    for item in gpu_tests:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models are dominated by per-op overhead; one thread avoids oversubscribing small CI machines."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

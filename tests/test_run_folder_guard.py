"""A new invocation never changes a folder that already holds a run or a sweep."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import TINY_SYNTHETIC, run_subprocess

QUICK = [*TINY_SYNTHETIC, "trainer.epochs=1", "report.baselines=false", "diagnostics.every=0"]


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("guard")
    result = run_subprocess("hydra.run.dir=X", *QUICK, cwd=cwd)
    assert result.code == 0, result.err
    return cwd


@pytest.mark.parametrize(
    "args",
    [
        ["trainer.lr=-1"],  # a bad value
        [],  # the same command again
        ["balancer=cagrad", "balancer.c=abc"],  # a type error at compose time
        ["arch=nope"],  # an unknown group choice
        ["trainer.epochs=1", "dataset=synthetic", "tasks.names=[nope]"],  # a dataset-level error
    ],
)
def test_existing_run_is_byte_identical_after_a_refused_invocation(cli, finished_run: Path, args: list[str]) -> None:
    before = fingerprint(finished_run / "X")
    result = cli("hydra.run.dir=X", *args, cwd=finished_run)
    assert result.code == 2
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mtlrun: error:"), result.err
    assert fingerprint(finished_run / "X") == before
    assert sorted(p.name for p in finished_run.iterdir()) == ["X"]


def test_overwrite_moves_the_old_run_aside(cli, tmp_path: Path) -> None:
    assert cli("hydra.run.dir=X", *QUICK).code == 0
    before = fingerprint(tmp_path / "X")
    assert cli("hydra.run.dir=X", *QUICK, "seed=1", "run.overwrite=true").code == 0
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("X.replaced-")]
    assert len(kept) == 1 and fingerprint(kept[0]) == before
    assert (tmp_path / "X" / "summary.json").is_file()


def test_a_bad_option_leaves_no_folder(cli, tmp_path: Path) -> None:
    result = cli(*QUICK, "balancer=cagrad", "balancer.c=-1")
    assert result.code == 2 and "balancer.c" in result.err
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_folder_with_jobs_is_refused(cli, tmp_path: Path) -> None:
    assert cli("-m", "seed=0", "hydra.sweep.dir=S", *QUICK).code == 0
    before = fingerprint(tmp_path / "S")
    result = cli("-m", "seed=0,1", "hydra.sweep.dir=S", *QUICK)
    assert result.code == 2 and "S already holds a sweep" in result.err
    assert fingerprint(tmp_path / "S") == before


def test_a_file_in_the_way_is_refused(cli, tmp_path: Path) -> None:
    (tmp_path / "F").write_text("not a folder")
    result = cli("hydra.run.dir=F", *QUICK)
    assert result.code == 2 and "is a file" in result.err

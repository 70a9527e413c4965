"""mtlrun-compare's mistakes are one line each (``mtlrun-compare: error: ...``, exit 2) naming the
flag, never argparse's usage block or a traceback; --out and --plot are checked before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtlrun.report.compare import main
from tests.report.helpers import make_run


@pytest.fixture
def where(tmp_path: Path) -> Path:
    make_run(tmp_path / "runs" / "0", arch="hps", seed=0, acc=0.6, mae=1.0)
    make_run(tmp_path / "runs" / "1", arch="mmoe", seed=0, acc=0.7, mae=2.0)
    (tmp_path / "afile").write_text("a file\n")
    (tmp_path / "afolder").mkdir()
    return tmp_path


def one_line(args: list[str], where: Path, capsys, monkeypatch) -> str:
    monkeypatch.chdir(where)
    try:
        code = main(args)
    except SystemExit as ex:
        code = ex.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtlrun-compare: error: "), err
    assert "usage:" not in err and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "args, says",
    [
        ([], "the following arguments are required: PATH"),
        (["runs", "--nope"], "unrecognized arguments: --nope"),
        (["runs", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["runs", "--at", "middle"], "argument --at"),
        (["runs", "--filter", "arch"], "--filter 'arch' must look like KEY=VALUE"),
        (["runs", "--out", "afolder"], "--out afolder is a folder"),
        (["runs", "--out", "afile/cmp.md"], "--out afile/cmp.md: afile is a file, not a folder"),
        (["runs", "--out", "afile/deeper/cmp.md"], "--out afile/deeper/cmp.md: afile is a file"),
        (["runs", "--plot", "afolder"], "--plot afolder is a folder"),
        (["runs", "--plot", "afile/cmp.png"], "--plot afile/cmp.png: afile is a file, not a folder"),
        (["runs", "--plot", "cmp.nope"], "--plot cmp.nope: unknown file type '.nope'; valid: "),
        (["nowhere", "--out", "afolder"], "--out afolder is a folder"),  # before any folder is read
    ],
)
def test_each_mistake_is_one_line_naming_the_flag(where: Path, capsys, monkeypatch, args, says):
    assert says in one_line(args, where, capsys, monkeypatch)
    assert sorted(p.name for p in where.iterdir()) == ["afile", "afolder", "runs"]  # nothing written


def test_an_unwritable_folder_is_refused_up_front(where: Path, capsys, monkeypatch):
    locked = where / "locked"
    locked.mkdir()
    real_access = os.access
    # the permission the system would deny a user (root may write anywhere, so it is simulated)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "locked" and real_access(path, mode))
    assert "the folder locked is not writable" in one_line(["runs", "--out", "locked/x.md"], where, capsys, monkeypatch)
    assert not list(locked.iterdir())


def test_missing_folders_above_the_file_are_created_and_suffixes_pick_the_format(where: Path, capsys, monkeypatch):
    monkeypatch.chdir(where)
    assert main(["runs", "--format", "md", "--out", "new/sub/cmp.md", "--plot", "figs/cmp.svg"]) == 0
    assert (where / "new" / "sub" / "cmp.md").read_text().startswith("# Comparison")
    assert (where / "figs" / "cmp.svg").read_text().lstrip().startswith("<?xml")


def test_a_write_that_fails_anyway_is_one_line(where: Path, capsys, monkeypatch):
    monkeypatch.chdir(where)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mtlrun.results.atomic.os.fsync", full_disk)
    assert main(["runs", "--out", "cmp.md"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mtlrun-compare: error: --out cmp.md: cannot write it (No space left on device)"]
    assert not (where / "cmp.md").exists() and not list(where.glob(".cmp.md.*"))  # nothing half-written


def test_help_is_the_whole_usage(capsys):
    exe = Path(sys.executable).with_name("mtlrun-compare")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "mtlrun.report.compare"]
    out = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith("usage: mtlrun-compare")
    assert "--plot FILE.png" in out.stdout and "Example: mtlrun-compare" in out.stdout and not out.stderr

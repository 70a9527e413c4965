"""Every file mtlrun writes gets the user's umask, ``0666 & ~umask`` (0644 under umask 022), so
colleagues can read shared results and share one baseline cache; nothing is left private (0600)
because it went through a temporary file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from mtlrun.results import file_modes
from mtlrun.results.atomic import save_torch, write_json, write_text

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")

TINY = [
    "dataset=synthetic",
    "dataset.num_samples=300",
    "dataset.input_dim=8",
    "trainer.epochs=1",
    "diagnostics.every=0",
    "report.baselines=true",
]


@contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def modes(*folders: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder.parent)): stat.S_IMODE(p.stat().st_mode)
        for folder in folders
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"])
def test_atomic_writes_get_the_umask_mode(tmp_path: Path, mask: int, expected: int):
    from mtlrun.data.formats.benchmark_files import save_bytes, save_npy

    with umask(mask):
        assert file_modes.umask() == mask and file_modes._probed_umask() == mask
        assert file_modes.shared_mode() == expected
        write_json(tmp_path / "a.json", {"x": 1})
        write_text(tmp_path / "b.md", "text")
        save_torch(tmp_path / "c.pt", {"x": 1})
        save_npy(tmp_path / "d.npy", np.zeros(3))
        save_bytes(tmp_path / "e.bin", b"abc")
        (tmp_path / "old.json").write_text("{}")
        os.chmod(tmp_path / "old.json", 0o600)  # a file written before: replaced with the umask's mode
        write_json(tmp_path / "old.json", {"x": 2})
    assert modes(tmp_path) == {
        f"{tmp_path.name}/{n}": expected for n in ("a.json", "b.md", "c.pt", "d.npy", "e.bin", "old.json")
    }


def test_temporaries_get_distinct_names(tmp_path: Path):
    made = set()
    for _ in range(50):
        fd, path = file_modes.new_temporary(tmp_path, ".x.", ".tmp")
        os.close(fd)
        made.add(path)
    assert len(made) == 50 and all(p.name.startswith(".x.") and p.name.endswith(".tmp") for p in made)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600)], ids=["umask-022", "umask-077"])
def test_every_file_of_a_run_and_its_baseline_cache_gets_the_umask_mode(cli, tmp_path: Path, mask, expected):
    with umask(mask):
        result = cli(*TINY)
    assert result.code == 0, result.err
    (run,) = result.run_dirs()
    cache = tmp_path / "outputs" / "baselines"
    found = modes(run, cache)
    assert any(name.endswith("checkpoints/last.pt") for name in found)
    assert any(name.startswith("baselines/") and name.endswith(".json") for name in found)
    assert any(name.endswith(".lock") for name in found)  # the cache's lock files too
    assert {name: mode for name, mode in found.items() if mode != expected} == {}

"""Shared benchmark-file handling: data roots, decompressed checksums, atomic verified downloads."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import pytest

from mtlrun.data.formats import benchmark_files as bf
from mtlrun.errors import ConfigError


class FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def fake_opener(payloads: dict[str, bytes], calls: list[str]):
    def urlopen(url: str, timeout: float = 0) -> FakeResponse:
        calls.append(url)
        if url not in payloads:
            raise OSError("no route to host")
        return FakeResponse(payloads[url])

    return urlopen


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLRUN_DATA", str(tmp_path / "shared"))
    assert bf.data_root("qm9", str(tmp_path / "mine")) == tmp_path / "mine"
    assert bf.data_root("qm9", None) == tmp_path / "shared" / "qm9"
    monkeypatch.delenv("MTLRUN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert bf.data_root("qm9", None) == tmp_path / "cache" / "mtlrun" / "qm9"


def test_checksum_is_taken_on_the_decompressed_bytes(tmp_path):
    payload = b"the same payload"
    digest = hashlib.md5(payload).hexdigest()
    for name, content in (
        ("a.gz", gzip.compress(payload, mtime=0)),
        ("b.gz", gzip.compress(payload, mtime=1)),
        ("c", payload),
    ):
        (tmp_path / name).write_bytes(content)
        data = bf.read_bytes("x", tmp_path, tmp_path / name, "")
        bf.check_md5("x", tmp_path, tmp_path / name, data, digest, "")  # differently compressed copies all pass
    with pytest.raises(ConfigError, match="has MD5"):
        bf.check_md5("x", tmp_path, tmp_path / "c", b"other", digest, "")


def test_download_is_verified_and_atomic(tmp_path, monkeypatch):
    payload = b"IDX bytes"
    url = "https://example.org/data/file.gz"
    file = bf.DataFile("file.gz", url, hashlib.md5(payload).hexdigest())
    calls: list[str] = []
    monkeypatch.setattr(bf, "urlopen", fake_opener({url: gzip.compress(payload)}, calls))
    path = bf.download("x", tmp_path, file)
    assert path == tmp_path / "file.gz" and gzip.decompress(path.read_bytes()) == payload and calls == [url]
    bf.fetch_missing("x", tmp_path, [file], alternatives={})
    assert calls == [url]  # present files are not fetched again

    corrupt = bf.DataFile("bad.gz", url, "0" * 32)
    with pytest.raises(
        ConfigError, match="the download of bad.gz from https://example.org/data/file.gz has MD5"
    ) as info:
        bf.download("x", tmp_path, corrupt)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.gz"]  # no partial or unverified file left

    offline = bf.DataFile("other.gz", "https://example.org/missing.gz")
    with pytest.raises(ConfigError, match="cannot download https://example.org/missing.gz"):
        bf.download("x", tmp_path, offline)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.gz"]


def test_multi_mnist_download_through_the_dataset(tmp_path, monkeypatch):
    """dataset.download=true fetches the four files (faked) and then builds from them."""
    from mtlrun.data import DATASETS
    from mtlrun.data.benchmarks.multi_mnist import source_files
    from tests.data.benchmark_fixtures import write_idx

    source = tmp_path / "source"
    write_idx(source)
    payloads = {f.url: (source / f.name).read_bytes() for f in source_files("mnist")}
    calls: list[str] = []
    monkeypatch.setattr(bf, "urlopen", fake_opener(payloads, calls))
    target = Path(tmp_path / "target")
    data = DATASETS.build("multi_mnist", {"root": str(target), "verify": False, "download": True})
    assert len(calls) == 4 and len(data.test) == 20
    assert sorted(p.name for p in target.iterdir()) == sorted(f.name for f in source_files("mnist"))

"""QM9: SDF and CSV parsing, PyG's units, the uncharacterized list, errors, the CLI."""

from __future__ import annotations

import pytest
import torch

from mtlrun.data import DATASETS
from mtlrun.data.benchmarks.qm9 import HARTREE_TO_EV, KCALMOL_TO_EV, TARGETS
from mtlrun.errors import ConfigError
from tests.data.benchmark_fixtures import write_qm9

TINY = ["trainer.epochs=1", "trainer.batch_size=2", "report.baselines=false", "diagnostics.every=0"]
SMALL = {"verify": False, "val_size": 1, "test_size": 1}


def test_molecules_targets_and_units(tmp_path):
    write_qm9(tmp_path, copies=1, excluded=())
    data = DATASETS.build("qm9", {"root": str(tmp_path), **SMALL})
    assert list(data.tasks) == list(TARGETS) and len(TARGETS) == 11
    assert data.input_shape == (5, 4) and data.default_encoder == "mpnn"
    everything = torch.cat([data.train.x, data.val.x, data.test.x])
    targets = {t: torch.cat([s.targets[t] for s in (data.train, data.val, data.test)]) for t in TARGETS}
    methane = int((everything[:, :, 0] > 0).sum(1).argmax())  # the only 5-atom molecule
    assert everything[methane, :, 0].tolist() == [6, 1, 1, 1, 1]
    assert everything[methane, 0, 1:].tolist() == pytest.approx([-0.0127, 1.0858, 0.0080], abs=1e-4)
    assert targets["homo"][methane].item() == pytest.approx(-0.3877 * HARTREE_TO_EV, rel=1e-5)
    assert targets["U0"][methane].item() == pytest.approx(-395.999594594 * KCALMOL_TO_EV, rel=1e-5)  # -17.17 eV
    assert targets["cv"][methane].item() == pytest.approx(6.469, rel=1e-5)
    water = int((everything[:, :, 0] > 0).sum(1).argmin())
    assert everything[water, :, 0].tolist() == [8, 1, 1, 0, 0]  # padded with atomic number 0


def test_uncharacterized_molecules_are_dropped(tmp_path):
    write_qm9(tmp_path, copies=2, excluded=(1,))  # NH3, the second molecule
    data = DATASETS.build("qm9", {"root": str(tmp_path), **SMALL})
    assert data.info["excluded"] == 1 and sum(data.info["sizes"]) == 5
    everything = torch.cat([data.train.x, data.val.x, data.test.x])
    assert (everything[:, :, 0] == 7).sum() == 1  # one nitrogen left: the copy's NH3


def test_missing_and_malformed_files(tmp_path):
    write_qm9(tmp_path)
    with pytest.raises(ConfigError, match="3 molecules and 0 uncharacterized, not the published 133885"):
        DATASETS.build("qm9", {"root": str(tmp_path), "val_size": 1, "test_size": 1})
    (tmp_path / "uncharacterized.txt").unlink()
    with pytest.raises(ConfigError, match="missing file uncharacterized.txt") as info:
        DATASETS.build("qm9", {"root": str(tmp_path), **SMALL})
    assert "\n" not in str(info.value) and "figshare" in str(info.value)
    write_qm9(tmp_path)
    text = (tmp_path / "gdb9.sdf").read_text().replace(" H ", " Xx", 1)
    (tmp_path / "gdb9.sdf").write_text(text)
    with pytest.raises(ConfigError, match="gdb9.sdf: molecule 1 is not a V2000 block"):
        DATASETS.build("qm9", {"root": str(tmp_path), **SMALL})
    write_qm9(tmp_path)
    with pytest.raises(ConfigError, match="cannot fill val_size=2"):
        DATASETS.build("qm9", {"root": str(tmp_path), "verify": False, "val_size": 2, "test_size": 1})


def test_cli_run(cli, tmp_path):
    write_qm9(tmp_path / "data", copies=3)
    args = ["dataset=qm9", f"dataset.root={tmp_path / 'data'}", "dataset.verify=false", "dataset.val_size=2"]
    result = cli(*args, "dataset.test_size=2", "encoder.dim=8", "encoder=mpnn", "tasks=qm9_11", *TINY)
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["run"]["tasks"] == list(TARGETS) and summary["status"] == "completed"


def test_download_extracts_the_archive(tmp_path, monkeypatch):
    """dataset.download=true: the DeepChem zip (gdb9.sdf + csv) and the uncharacterized list, faked."""
    import io
    import zipfile

    from mtlrun.data.benchmarks.qm9 import EXCLUDED, ZIP
    from mtlrun.data.formats import benchmark_files as bf
    from tests.data.test_benchmark_files import fake_opener

    source = tmp_path / "source"
    write_qm9(source, copies=2)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("gdb9.sdf", "gdb9.sdf.csv"):
            z.writestr(name, (source / name).read_bytes())
    payloads = {ZIP.url: archive.getvalue(), EXCLUDED.url: (source / "uncharacterized.txt").read_bytes()}
    calls: list[str] = []
    monkeypatch.setattr(bf, "urlopen", fake_opener(payloads, calls))
    target = tmp_path / "target"
    data = DATASETS.build("qm9", {"root": str(target), "download": True, **SMALL})
    assert sorted(calls) == sorted(payloads) and sum(data.info["sizes"]) == 6
    assert sorted(p.name for p in target.iterdir()) == ["gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt"]

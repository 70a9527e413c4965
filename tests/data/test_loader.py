"""The DataLoader path: same batches and losses as the in-memory path, seeded epoch order, memory maps."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from mtlrun.data import DATASETS, TensorSplit
from mtlrun.data.loader import ArraySplit, LoaderOptions, LoaderSplit, epoch_generator, place_splits
from tests.conftest import TINY
from tests.data.npy_helpers import NPY_TASKS, write_npy_folder

TASKS = {"cls": {"kind": "classification"}, "flag": {"kind": "binary"}, "y": {"kind": "regression"}}


def _train_losses(folder) -> list[tuple]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [(r["epoch"], r["task"], r["value"]) for r in rows if r["split"] == "train" and r["metric"] == "loss"]


def test_dataloader_and_memory_paths_give_identical_losses_through_the_cli(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("mtlrun.report.plots.plot_run", lambda folder: None)  # plots are tested elsewhere
    write_npy_folder(tmp_path / "arrays", sizes=(150, 40, 40))
    common = [*TINY, "dataset=npy_folder", "dataset.root=arrays", NPY_TASKS, "report.baselines=false"]
    common += ["diagnostics.every=0"]
    common += ["encoder=mlp", "encoder.dropout=0.2"]  # random masks: the loader must leave the global generator alone
    memory = cli(*common, "loader.mode=memory", "hydra.run.dir=memory")
    streamed = cli(*common, "loader.mode=dataloader", "loader.num_workers=1", "hydra.run.dir=streamed")
    assert memory.code == 0 and streamed.code == 0, memory.err + streamed.err
    a, b = _train_losses(tmp_path / "memory"), _train_losses(tmp_path / "streamed")
    assert len(a) == 2 * 3 and a == b
    assert json.loads((tmp_path / "memory" / "summary.json").read_text())["dataset_info"]["loader"] == "memory"
    summary = json.loads((tmp_path / "streamed" / "summary.json").read_text())
    assert summary["dataset_info"]["loader"] == "dataloader"
    assert summary["metrics"] == json.loads((tmp_path / "memory" / "summary.json").read_text())["metrics"]


def test_epoch_order_depends_only_on_seed_and_epoch():
    def order(seed, epoch):
        return torch.randperm(100, generator=epoch_generator(seed, epoch))

    assert torch.equal(order(3, 5), order(3, 5))
    assert not torch.equal(order(3, 5), order(3, 6))
    assert not torch.equal(order(3, 5), order(4, 5))
    split = TensorSplit(torch.arange(50.0)[:, None], {"t": torch.arange(50)})
    streamed = LoaderSplit(split)
    for epoch in (1, 2):
        first = [y["t"] for _, y in split.batches(8, shuffle=True, generator=epoch_generator(0, epoch))]
        again = [y["t"] for _, y in streamed.batches(8, shuffle=True, generator=epoch_generator(0, epoch))]
        assert all(torch.equal(p, q) for p, q in zip(first, again)) and len(first) == len(again) == 7
        assert sorted(torch.cat(first).tolist()) == list(range(50))


def test_memory_mapped_arrays_are_not_loaded_whole(tmp_path):
    write_npy_folder(tmp_path)
    data = DATASETS.build("npy_folder", {"root": str(tmp_path), "tasks": TASKS})
    source = data.train.source
    assert isinstance(source, ArraySplit)
    assert isinstance(source.x, np.memmap) and all(isinstance(y, np.memmap) for y in source.targets.values())
    x, y = next(data.train.batches(16, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert isinstance(source.x, np.memmap)  # reading a batch reads rows, the split stays a map
    assert x.shape == (16, 8) and x.dtype == torch.float32 and y["cls"].dtype == torch.int64
    assert y["y"].dtype == torch.float32
    # workers get the file's path, not a copy of the array
    assert len(pickle.dumps(source)) < 2000 < source.x.nbytes
    clone = pickle.loads(pickle.dumps(source))
    assert isinstance(clone.x, np.memmap) and torch.equal(clone[torch.arange(5)][0], source[torch.arange(5)][0])
    # memory mode reads everything into tensors; the numbers are the same
    place_splits(data, "memory", LoaderOptions(), torch.device("cpu"))
    assert isinstance(data.train, TensorSplit)
    assert torch.equal(data.train.x, torch.from_numpy(np.load(tmp_path / "train/x.npy")))


def test_npy_folder_declares_tasks_from_the_train_split(tmp_path):
    write_npy_folder(tmp_path)
    tasks = {**TASKS, "y": {"kind": "regression", "primary": "rmse"}}
    data = DATASETS.build("npy_folder", {"root": str(tmp_path), "tasks": tasks})
    y = np.load(tmp_path / "train" / "y.npy")
    assert data.tasks["cls"].out_dim == 3 and data.tasks["flag"].kind == "binary"
    assert data.tasks["y"].target_shift == pytest.approx(y.mean())
    assert data.tasks["y"].target_scale == pytest.approx(y.std())
    assert data.tasks["y"].primary == "rmse" and data.input_shape == (8,) and data.default_encoder == "mlp"
    assert [len(s) for s in (data.train, data.val, data.test)] == [200, 60, 60]


def test_a_superseded_pass_cannot_continue():
    streamed = LoaderSplit(TensorSplit(torch.arange(20.0)[:, None], {"t": torch.arange(20)}))
    old = streamed.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0))
    next(old)
    new = streamed.batches(4, shuffle=True, generator=torch.Generator().manual_seed(1))
    next(new)
    with pytest.raises(RuntimeError, match="newer pass"):
        next(old)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["loader.mode=stream"], ("loader.mode=stream", "dataloader")),
        (["loader.num_workers=-1"], ("loader.num_workers=-1", ">= 0")),
        (["loader.prefetch_factor=0"], ("loader.prefetch_factor=0", ">= 1")),
        (["dataset=npy_folder", "dataset.root=nowhere", NPY_TASKS], ("dataset.root=nowhere",)),
        (["dataset=npy_folder", "dataset.root=arrays", "dataset.tasks={c: {kind: ranking}}"], ("ranking", "binary")),
        (["dataset=npy_folder", "dataset.root=arrays", "dataset.tasks={nope: {kind: binary}}"], ("nope.npy",)),
        (["dataset=npy_folder", "dataset.root=arrays", "dataset.tasks={y: {kind: binary}}"], ("y.npy", "0/1")),
    ],
)
def test_bad_loader_and_npy_settings_are_one_line(cli, tmp_path, overrides, words):
    write_npy_folder(tmp_path / "arrays", sizes=(20, 10, 10))
    result = cli(*overrides, "trainer.epochs=1")
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2 and len(lines) == 1, result.err
    assert all(w in lines[0] for w in words), lines[0]


def test_auto_keeps_the_fast_path_where_the_data_fits(tmp_path, monkeypatch):
    import mtlrun.data.loader as loader

    write_npy_folder(tmp_path, sizes=(20, 10, 10))
    cpu = torch.device("cpu")
    needed = 40 * 8 * 4 + 40 * (8 + 4 + 4)  # inputs plus int64 classes, float flags and targets
    monkeypatch.setattr(loader, "available_memory", lambda device: 2 * needed)
    data = DATASETS.build("npy_folder", {"root": str(tmp_path), "tasks": TASKS})
    assert sum(loader.split_nbytes(s) for s in (data.train, data.val, data.test)) == needed
    assert place_splits(data, "auto", LoaderOptions(), cpu) == "memory" and isinstance(data.train, TensorSplit)
    monkeypatch.setattr(loader, "available_memory", lambda device: 2 * needed - 2)
    data = DATASETS.build("npy_folder", {"root": str(tmp_path), "tasks": TASKS})
    assert place_splits(data, "auto", LoaderOptions(num_workers=0), cpu) == "dataloader"
    assert isinstance(data.train, LoaderSplit) and data.train.options.num_workers == 0
    in_memory = DATASETS.build("synthetic", {"num_samples": 200, "input_dim": 4})
    monkeypatch.setattr(loader, "available_memory", lambda device: 0)
    assert place_splits(in_memory, "auto", LoaderOptions(), cpu) == "memory"  # already held as tensors

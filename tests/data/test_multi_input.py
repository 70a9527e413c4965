"""Multi-input tasks: per-task splits and epochs, per-task evaluation, training through the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from mtlrun.data import DATASETS, TensorSplit
from mtlrun.data.batch import batch_losses
from mtlrun.data.multi_input import MultiInputSplit
from mtlrun.models import ARCHS, EncoderSpec
from mtlrun.models.multi_input import prepare_multi_input
from mtlrun.train.evaluate import TaskEvaluator
from tests.conftest import TINY

MULTI = ["dataset=multi_domain", "dataset.input_dims=[6,10]", "dataset.num_samples=[200,90]", *TINY]


def _split(n: int, task: str, offset: int = 0) -> TensorSplit:
    return TensorSplit(torch.arange(offset, offset + n, dtype=torch.float32)[:, None], {task: torch.arange(n)})


def test_epoch_is_the_largest_task_and_smaller_tasks_cycle_with_their_own_shuffles():
    split = MultiInputSplit({"a": _split(30, "a"), "b": _split(7, "b")})
    assert split.num_batches(3) == 10 and len(split) == 37
    steps = list(split.batches(3, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert len(steps) == 10 and all(set(s) == {"a", "b"} for s in steps)
    a = torch.cat([s["a"][1]["a"] for s in steps])
    assert sorted(a.tolist()) == list(range(30))  # the largest task: exactly one pass
    b = torch.cat([s["b"][1]["b"] for s in steps]).tolist()  # passes of 3+3+1 samples, cycling
    passes = [b[0:7], b[7:14], b[14:21]]
    assert all(sorted(p) == list(range(7)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # each new pass is reshuffled
    again = list(split.batches(3, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(p[t][0], q[t][0]) for p, q in zip(steps, again) for t in "ab")


def test_multi_domain_gives_each_task_its_own_inputs_of_its_own_size():
    data = DATASETS.build("multi_domain", {"input_dims": [6, 10], "num_samples": [200, 90]})
    assert data.input_shapes == {"d1": (6,), "d2": (10,)} and data.input_shape == (10,)
    assert data.train.splits["d1"].x.shape[1] == 6 and data.train.splits["d2"].x.shape[1] == 10
    assert sum(len(s.splits["d1"]) for s in (data.train, data.val, data.test)) == 200
    sub = data.select(["d1"])
    assert list(sub.train.splits) == ["d1"] and sub.input_shape == (10,)  # the same network in any task set
    same = DATASETS.build("multi_domain", {"input_dims": [6, 10], "num_samples": [200, 90]})
    assert torch.equal(same.test.splits["d2"].x, data.test.splits["d2"].x)


def _model(data, arch="hps"):
    torch.manual_seed(0)
    spec = EncoderSpec("mlp", data.input_shape, {"hidden": [8]})
    model = ARCHS.build(arch, {}, encoder=spec, tasks=list(data.tasks.values()))
    prepare_multi_input(model, data, arch)
    return model


def test_evaluation_runs_each_task_on_its_own_split():
    data = DATASETS.build("multi_domain", {"input_dims": [6, 10], "num_samples": [200, 90]})
    model = _model(data).eval()
    metrics, losses = TaskEvaluator(data.tasks, torch.device("cpu")).evaluate(model, data.val, 16)
    for task, split in data.val.splits.items():
        with torch.no_grad():
            out = model.forward_task(split.x, task)
        y = split.targets[task]
        assert metrics[task]["accuracy"] == pytest.approx((out.argmax(1) == y).float().mean().item(), abs=1e-6)
        assert losses[task] == pytest.approx(data.tasks[task].loss(out, y).item(), rel=1e-5)


def test_one_loss_function_for_both_batch_forms_and_adapters_belong_to_their_task():
    data = DATASETS.build("multi_domain", {"input_dims": [6, 10], "num_samples": [200, 90]})
    model = _model(data)
    batch = next(data.train.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0)))
    fns = {t: s.loss for t, s in data.tasks.items()}
    losses = batch_losses(model, fns, batch)
    for task, (x, y) in batch.items():
        assert losses[task].item() == pytest.approx(fns[task](model.forward_task(x, task), y[task]).item())
    # functional evaluation with substituted parameters: zero head weights give log(C) cross-entropy
    params = {n: torch.zeros_like(p) for n, p in model.named_parameters() if n.startswith("heads.")}
    for value in batch_losses(model, fns, batch, params).values():
        assert value.item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
    # task d1's loss reaches only the shared encoder, its own adapter and its own head
    model.zero_grad()
    losses["d1"].backward()
    touched = {n.split(".")[0] + "." + n.split(".")[1] for n, p in model.named_parameters() if p.grad is not None}
    assert touched == {"encoder.stages", "input_adapters.d1", "heads.d1"}
    own = {id(p) for p in model.task_parameters("d1")}
    assert all(id(p) in own for p in model.input_adapters["d1"].parameters())
    assert not any(id(p) in own for p in model.input_adapters["d2"].parameters())
    counts = model.parameter_counts()
    assert counts["total"] == counts["shared"] + sum(counts["per_task"].values())


def test_multi_input_training_through_the_cli_with_tasks_of_different_input_sizes(cli, monkeypatch):
    monkeypatch.setattr("mtlrun.report.plots.plot_run", lambda folder: None)  # plots are tested elsewhere
    result = cli(*MULTI, "arch=hps", "balancer=pcgrad", "diagnostics.every=3", "report.baselines=true")
    assert result.code == 0, result.err
    folder = result.run_dirs()[-1]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["run"]["tasks"] == ["d1", "d2"]
    assert summary["dataset_info"]["input_dims"] == {"d1": 6, "d2": 10}
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    for split in ("val", "test"):
        assert {r["task"] for r in rows if r["split"] == split and r["metric"] == "accuracy"} == {"d1", "d2"}
    # steps per epoch: the largest task's batches (120 train samples of d1 at batch 64)
    assert [r["step"] for r in rows if r["metric"] == "loss" and r["split"] == "train" and r["task"] == "d1"] == [2, 4]
    assert json.loads((folder / "diagnostics.json").read_text())["steps_sampled"] >= 1
    transfer = json.loads((folder / "transfer.json").read_text())
    assert {"d1", "d2"} <= set(json.dumps(transfer).replace('"', " ").split())


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["arch=cross_stitch"], ("arch=cross_stitch", "own inputs", "hps")),
        (["arch=ple"], ("arch=ple", "hps")),
        (["balancer=mgda", "balancer.rep_grad=true"], ("rep_grad", "own inputs")),
        (["dataset.input_dims=[4,5,6]"], ("dataset.input_dims", "(2)")),
    ],
)
def test_unsupported_multi_input_settings_are_one_line(cli, overrides, words):
    result = cli(*MULTI, *overrides, "report.baselines=false")
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2 and len(lines) == 1, result.err
    assert all(w in lines[0] for w in words), lines[0]


def test_multi_input_splits_stream_through_the_dataloader_path_with_the_same_batches():
    from mtlrun.data.loader import LoaderOptions, LoaderSplit, place_splits

    memory = DATASETS.build("multi_domain", {"input_dims": [6, 10], "num_samples": [200, 90]})
    streamed = DATASETS.build("multi_domain", {"input_dims": [6, 10], "num_samples": [200, 90]})
    assert place_splits(streamed, "dataloader", LoaderOptions(num_workers=0), torch.device("cpu")) == "dataloader"
    assert all(isinstance(s, LoaderSplit) for s in streamed.train.splits.values())
    a = list(memory.train.batches(32, shuffle=True, generator=torch.Generator().manual_seed(1)))
    b = list(streamed.train.batches(32, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert len(a) == len(b) == 4
    for p, q in zip(a, b):
        for t in ("d1", "d2"):
            assert torch.equal(p[t][0], q[t][0]) and torch.equal(p[t][1][t], q[t][1][t])

"""Every architecture through the real CLI: trains, lowers its loss, records honest parameter counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY, TINY_SYNTHETIC

ARCH_OPTIONS = {
    "mmoe": ["arch.num_experts=2"],
    "cgc": [],
    "ple": [],
    "dselect_k": ["arch.num_experts=3", "arch.k=2", "arch.entropy_reg=0.001"],
    "mtan": [],
    "cross_stitch": [],
    "soft_sharing": [],
    "branched": [],
}
ENCODERS = {
    "mlp": ["encoder=mlp", "encoder.hidden=[32,16]"],
    "cnn": ["encoder=cnn", "encoder.channels=[4,8]", "encoder.hidden=16"],
}
#: no baselines or diagnostics: these tests are about the architectures
FAST = ["report.baselines=false", "diagnostics.every=0"]
DATASETS = {"multi_digits": [*TINY, "dataset.pairs_per_image=1", *FAST], "synthetic": [*TINY_SYNTHETIC, *FAST]}
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def train_losses(run_dir: Path) -> dict[int, float]:
    """Epoch -> training loss summed over tasks, from metrics.jsonl."""
    totals: dict[int, float] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["split"] == "train" and row["metric"] == "loss":
            totals[row["epoch"]] = totals.get(row["epoch"], 0.0) + row["value"]
    return totals


def checkpoint_parameter_count(run_dir: Path) -> int:
    """Parameters counted from checkpoints/last.pt alone (BatchNorm statistics are buffers)."""
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    return sum(v.numel() for k, v in state.items() if not k.endswith(BUFFER_SUFFIXES))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("arch", ARCH_OPTIONS)
def test_arch_trains_through_cli(cli, arch: str, encoder: str, dataset: str):
    result = cli(f"arch={arch}", *ARCH_OPTIONS[arch], *ENCODERS[encoder], *DATASETS[dataset])
    if encoder == "cnn" and dataset == "synthetic":
        assert result.code == 2
        assert "encoder=cnn" in result.err and len(result.err.strip().splitlines()) == 1
        return
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed"
    run_dir = result.run_dirs()[-1]
    losses = train_losses(run_dir)
    assert losses[2] < losses[1], losses
    counts = summary["parameters"]
    assert counts["total"] == checkpoint_parameter_count(run_dir)
    assert counts["shared"] + sum(counts["per_task"].values()) == counts["total"]
    assert all(n > 0 for n in counts["per_task"].values())


def test_sweep_over_every_arch(cli):
    archs = "hps,cross_stitch,mtan,mmoe,cgc,ple,dselect_k,soft_sharing,branched"
    result = cli(
        "-m",
        f"arch={archs}",
        "trainer.epochs=1",
        "trainer.batch_size=128",
        *ENCODERS["mlp"],
        *TINY_SYNTHETIC[:-2],
        *FAST,
    )
    assert result.code == 0, result.err
    summaries = [json.loads((d / "summary.json").read_text()) for d in result.run_dirs()]
    assert sorted(s["run"]["arch"] for s in summaries) == sorted(archs.split(","))
    assert all(s["status"] == "completed" for s in summaries), [(s["run"]["arch"], s.get("error")) for s in summaries]

"""Every registered balancer trains two epochs through the real CLI (multi_digits, arch=hps)."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

import mtlrun.balancers
from tests.conftest import TINY

#: small and quick: an MLP encoder, larger batches (fewer Jacobians), no baselines report, no diagnostics
QUICK = [*TINY, "trainer.batch_size=256", "arch=hps", "encoder=mlp", "report.baselines=false", "diagnostics.every=0"]

NAMES = mtlrun.balancers.BALANCERS.names()


def check_run(result) -> None:
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed", summary.get("error")
    rows = [json.loads(line) for line in (result.run_dirs()[-1] / "metrics.jsonl").read_text().splitlines()]
    losses = [r["value"] for r in rows if r["split"] == "train" and r["metric"] == "loss"]
    assert losses and all(math.isfinite(v) for v in losses)
    assert {r["epoch"] for r in rows if r["split"] == "train"} == {1, 2}


@pytest.mark.parametrize("name", NAMES)
def test_balancer_trains_through_the_cli(cli, name):
    if name == "torchjd" and importlib.util.find_spec("torchjd") is None:
        pytest.skip("torchjd is not installed (pip install 'mtlrun[torchjd]')")
    check_run(cli(f"balancer={name}", *QUICK))


@pytest.mark.parametrize("name", ["mgda", "nash_mtl"])
@pytest.mark.parametrize("mode", ["balancer.rep_grad=true", "balancer.update_every=2"])
def test_weight_methods_with_rep_grad_and_update_every(cli, name, mode):
    check_run(cli(f"balancer={name}", mode, *QUICK))

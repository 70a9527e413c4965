"""Every registered balancer trains through the real entry point: one table, one short run each.

A few rows also switch on an option that only a real run exercises (a split forward for
``rep_grad``, cached weights for ``update_every``, the extra forward of FAMO's ``same_batch``).
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from mtlrun.balancers import BALANCERS

#: one epoch on a few hundred synthetic examples: every balancer takes a handful of steps
QUICK = [
    "dataset=synthetic",
    "dataset.num_samples=400",
    "dataset.input_dim=8",
    "trainer.epochs=1",
    "trainer.batch_size=64",
    "report.baselines=false",
    "diagnostics.every=0",
]

#: the options of a balancer's one run, where it has some worth running end to end
OPTIONS = {
    "auto_lambda": ["balancer.primary_tasks=[t1]"],
    "cr_mogm": ["balancer.base=upgrad", "balancer.rep_grad=true"],
    "excess_mtl": ["balancer.rep_grad=true", "balancer.update_every=2"],
    "famo": ["balancer.xi_update=same_batch"],
    "gradnorm": ["balancer.rep_grad=true", "balancer.update_every=3"],
    "mgda": ["balancer.rep_grad=true"],
    "nash_mtl": ["balancer.update_every=2"],
    "stch": ["balancer.warmup_epochs=0"],
}


def test_the_table_names_registered_balancers_only():
    assert set(OPTIONS) <= set(BALANCERS.names())


@pytest.mark.parametrize("name", BALANCERS.names())
def test_balancer_trains_one_epoch_through_the_cli(cli, name):
    if name == "torchjd" and importlib.util.find_spec("torchjd") is None:
        pytest.skip("torchjd is not installed (pip install 'mtlrun[torchjd]')")
    result = cli(f"balancer={name}", *OPTIONS.get(name, []), *QUICK)
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed", summary.get("error")
    rows = [json.loads(line) for line in (result.run_dirs()[-1] / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    losses = [r["value"] for r in train if r["metric"] == "loss"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)  # tasks t1, t2
    assert {r["epoch"] for r in train} == {1}
    assert all(math.isfinite(r["value"]) for r in train if r["metric"] == "weight")

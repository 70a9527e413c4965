"""The acceptance path from outside: a 3-seed sweep, then a second sweep in the same folder."""

from __future__ import annotations

import json

import pytest

from tests.sweep_helpers import SMALL

#: SMALL with baselines on and the affinity measured (the report needs both)
WITH_REPORT = [o for o in SMALL if not o.startswith(("report.baselines", "diagnostics.every"))] + [
    "diagnostics.every=4"
]


@pytest.mark.slow
def test_three_seed_sweep_report_then_a_second_sweep_pools_nothing_from_it(cli, tmp_path):
    first = cli("-m", "seed=0,1,2", *WITH_REPORT)
    assert first.code == 0, first.err
    [sweep] = [p for p in (tmp_path / "multirun").glob("*/*") if p.is_dir()]
    text = (sweep / "1" / "report.md").read_text()
    for part in ("95% CI (%)", "p (Holm)", "## Configuration", "## Compute cost", "## Runs pooled", "plots/delta.png"):
        assert part in text, part
    relative = sweep.relative_to(tmp_path).as_posix()
    assert all(f"- seed {s}: `{relative}/{s}`" in text for s in (0, 1, 2)) and str(tmp_path) not in text
    second = cli("-m", "arch=hps,mmoe", "seed=0", *WITH_REPORT)
    assert second.code == 0, second.err
    [later] = [p for p in (tmp_path / "multirun").glob("*/*") if p.is_dir() and p != sweep]
    for job in ("0", "1"):
        report = json.loads((later / job / "transfer.json").read_text())
        assert report["seeds"] == [0] and report["pooled_runs"][0]["folder"].startswith(
            later.relative_to(tmp_path).as_posix()
        )
        assert report["pool"]["dropped"] == []

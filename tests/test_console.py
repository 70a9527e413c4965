"""Off a terminal no number is truncated: tables as wide as they need, logs as whole lines."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from mtlrun.report.aggregate import compare
from mtlrun.report.compare import render_table
from mtlrun.report.console import PlainHandler, console_handler, make_console
from mtlrun.report.folders import read_runs
from tests.conftest import run_subprocess
from tests.report.helpers import make_run


def test_a_wide_table_off_a_terminal_keeps_every_number(tmp_path):
    for i, arch in enumerate(("hps", "mmoe", "cgc", "ple", "single_task", "cross_stitch")):
        for seed in (0, 1):
            acc, mae = 0.123456 + i / 7, 11.5 + i
            make_run(tmp_path / f"{i}{seed}", arch=arch, balancer="pcgrad", seed=seed, acc=acc, mae=mae)
    comparison = compare(read_runs([tmp_path]), all_metrics=True)
    out = io.StringIO()
    render_table(comparison, make_console(out))
    text = out.getvalue()
    assert "…" not in text
    for row in comparison.rows:
        for stat in row.metrics.values():
            assert f"{stat.mean:.4f} ± {stat.std:.4f}" in text
    assert max(len(line) for line in text.splitlines()) > 80


def test_log_records_off_a_terminal_are_plain_whole_lines(capsys):
    handler = console_handler(show_path=False, markup=False)
    assert isinstance(handler, PlainHandler)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("mtlrun.test_console")
    logger.addHandler(handler)
    logger.propagate = False  # the root's handlers (from an earlier run in this process) stay out of it
    try:
        message = "x" * 150 + " 0.123456789"
        logger.warning(message)
    finally:
        logger.removeHandler(handler)
    assert capsys.readouterr().out == f"WARNING: {message}\n"


@pytest.mark.slow
def test_a_piped_sweep_shows_every_number_in_full(tmp_path: Path):
    result = run_subprocess(
        "-m",
        "seed=0,1",
        "trainer.epochs=1",
        "encoder=mlp",
        "encoder.hidden=[32]",
        "diagnostics.every=0",
        "report.baselines=false",
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    assert "…" not in result.out
    summary = json.loads(next(tmp_path.glob("multirun/*/*/sweep_summary.json")).read_text())
    (row,) = summary["rows"]
    for stat in row["metrics"].values():
        assert f"{stat['mean']:.4f} ± {stat['std']:.4f}" in result.out

"""mtlrun-compare refuses keys no run has (--by, --filter, --sort) in one line, and its CSV leaves
missing values empty."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml

from mtlrun.report.compare import main
from tests.report.helpers import make_run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    make_run(tmp_path / "0", arch="hps", balancer="ew", seed=0)
    make_run(tmp_path / "1", arch="hps", balancer="pcgrad", seed=0)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--by", "balancr"], ["--by balancr", "did you mean balancer", "arch", "trainer.lr"]),
        (["--by", "arch,trainer.lrr"], ["--by trainer.lrr", "trainer.lr"]),
        (["--filter", "balancr=ew"], ["--filter balancr", "did you mean balancer"]),
        (["--filter", "balancer=mgda"], ["--filter balancer=mgda", "ew, pcgrad"]),
        (["--sort", "nosuch"], ["--sort nosuch", "rank", "delta_m", "score", "a/acc"]),
        (["--sort=-nosuch"], ["--sort nosuch"]),
    ],
)
def test_unknown_keys_fail_in_one_line_naming_the_valid_ones(runs, capsys, args, named):
    code = main([str(runs), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    for text in named:
        assert text in err


@pytest.mark.parametrize("args", [["--by", "balancer"], ["--filter", "balancer=ew"], ["--sort=-a"], ["--sort", "arch"]])
def test_known_keys_are_accepted(runs, capsys, args):
    assert main([str(runs), *args]) == 0, capsys.readouterr().err


def test_csv_writes_missing_values_as_empty_cells(runs, capsys):
    config_path = runs / "1" / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["balancer"]["gamma"] = 0.01
    config_path.write_text(yaml.safe_dump(config))
    assert main([str(runs), "--by", "balancer.gamma", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "—" not in out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted(row["balancer.gamma"] for row in rows) == ["", "0.01"]


def test_the_two_task_tradeoff_shows_the_single_task_point(runs, tmp_path):
    import json

    from mtlrun.report.aggregate import compare
    from mtlrun.report.compare_plot import plot_comparison, single_task_points
    from mtlrun.report.folders import read_runs

    report = {
        "own": {"delta_m": 1.0},
        "tasks": {"a": {"metrics": {"acc": {"stl": 0.7}}}, "b": {"metrics": {"mae": {"stl": 0.9}}}},
    }
    for run in ("0", "1"):
        (runs / run / "transfer.json").write_text(json.dumps(report))
    comparison = compare(read_runs([runs]))
    x, y = (c for c in comparison.columns if c.primary)
    assert single_task_points(comparison.rows, x, y) == [(0.7, 0.9)]
    assert plot_comparison(comparison, tmp_path / "cmp.png") and (tmp_path / "cmp.png").stat().st_size > 5000

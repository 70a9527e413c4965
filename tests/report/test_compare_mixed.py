"""mtlrun-compare names the settings its rows average over, refuses them with --strict, and ranks by one rule."""

from __future__ import annotations

from pathlib import Path

import yaml

from mtlrun.report.aggregate import compare
from mtlrun.report.compare import main, render
from mtlrun.report.folders import read_runs
from tests.report.helpers import make_run


def set_config(folder: Path, **values) -> None:
    """Set dotted keys of a run's ``.hydra/config.yaml``."""
    path = folder / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    for key, value in values.items():
        node = config
        *parents, last = key.split(".")
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = value
    path.write_text(yaml.safe_dump(config))


def test_rows_that_average_different_epochs_and_lr_warn_and_strict_refuses(tmp_path, capsys):
    make_run(tmp_path / "0", balancer="ew", seed=0)
    make_run(tmp_path / "1", balancer="ew", seed=1, lr=0.01)
    make_run(tmp_path / "2", balancer="famo", seed=0)
    set_config(tmp_path / "1", **{"trainer.epochs": 5})
    assert main([str(tmp_path), "--by", "arch,balancer"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mtlrun-compare: warning: rows average runs that differ in trainer.epochs, trainer.lr "
        "(add them to --by to split the rows, or --strict to refuse)"
    ]
    assert main([str(tmp_path), "--by", "arch,balancer", "--strict"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("mtlrun-compare: error: rows average runs that differ in trainer.epochs")
    assert main([str(tmp_path), "--by", "balancer,trainer.lr,trainer.epochs", "--strict"]) == 0


def test_a_balancer_constant_is_neither_pooled_over_nor_a_column(tmp_path):
    for seed in (0, 1):
        make_run(tmp_path / f"ew{seed}", balancer="ew", seed=seed)
        set_config(make_run(tmp_path / f"famo{seed}", balancer="famo", seed=seed), **{"balancer.gamma": 0.001})
    comparison = compare(read_runs([tmp_path]))
    assert comparison.label_keys == ["balancer.name"] and "balancer.gamma" not in comparison.differences
    by = compare(read_runs([tmp_path]), by=["balancer"])
    assert by.pooled == ["seed"] and by.mixed == {}
    set_config(tmp_path / "famo1", **{"balancer.gamma": 0.01})  # swept within famo: a real difference
    assert "balancer.gamma" in compare(read_runs([tmp_path]), by=["balancer"]).mixed


def test_one_ranking_rule_named_in_the_header_the_other_on_request(tmp_path):
    make_run(tmp_path / "0", arch="hps", seed=0, acc=0.5, delta_m=-1.0)
    make_run(tmp_path / "1", arch="mmoe", seed=0, acc=0.9, delta_m=-3.0)
    default = render(compare(read_runs([tmp_path])), "md")
    header = default.splitlines()[2]
    assert header.startswith("| rank (Δm) |") and "Δm ↑" in header and "score" not in header
    by_score = render(compare(read_runs([tmp_path]), rank_by="score"), "md")
    assert by_score.splitlines()[2].startswith("| rank (score) |") and "Δm ↑" not in by_score.splitlines()[2]
    assert "--rank-by score for the other rule" in default

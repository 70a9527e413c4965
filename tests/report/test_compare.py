"""mtlrun-compare on hand-made folders: pooling, grouping, Δm, Pareto, formats, broken folders."""

from __future__ import annotations

import csv
import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mtlrun.report.aggregate import compare
from mtlrun.report.compare import main
from mtlrun.report.folders import find_run_folders, read_run, read_runs
from tests.report.helpers import make_run


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """hps (2 seeds) and single_task (2 seeds) under a sweep folder, plus one mtl variant."""
    root = tmp_path / "multirun" / "2026-01-01" / "10-00-00"
    make_run(root / "0", arch="hps", seed=0, acc=0.60, mae=1.0)
    make_run(root / "1", arch="hps", seed=1, acc=0.70, mae=3.0)
    make_run(root / "2", arch="single_task", seed=0, acc=0.80, mae=2.0)
    make_run(root / "3", arch="single_task", seed=1, acc=0.80, mae=2.0)
    return root


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_seeds_are_pooled_into_mean_and_sample_std(sweep):
    comparison = compare(read_runs([sweep]))
    assert comparison.label_keys == ["arch.name"]
    assert comparison.pooled == ["seed"]
    rows = {row.label["arch.name"]: row for row in comparison.rows}
    assert set(rows) == {"hps", "single_task"}
    hps = rows["hps"]
    assert hps.metrics["a/acc"].mean == pytest.approx(0.65)
    assert hps.metrics["a/acc"].std == pytest.approx(0.0707107, rel=1e-5)
    assert hps.metrics["b/mae"].mean == pytest.approx(2.0) and hps.metrics["b/mae"].std == pytest.approx(1.41421356)
    assert rows["single_task"].metrics["b/mae"].std == 0.0
    assert [c.name for c in comparison.columns] == ["a/acc", "b/mae"]  # primary metrics only by default


def test_ranking_by_relative_score_without_delta_m(sweep):
    comparison = compare(read_runs([sweep]))
    assert comparison.ranked_by == "score"
    first, second = comparison.rows
    # single_task: acc 0.8 vs mean 0.725, mae 2.0 vs mean 2.0 -> positive; hps the mirror image
    assert first.label["arch.name"] == "single_task" and first.rank == 1 and first.score > 0 > second.score
    assert first.score == pytest.approx(((0.8 - 0.725) / 0.725 + 0) / 2)


def test_delta_m_from_transfer_json_ranks_rows(tmp_path):
    make_run(tmp_path / "x0", arch="hps", seed=0, acc=0.9, delta_m=-2.0)
    make_run(tmp_path / "x1", arch="hps", seed=1, acc=0.9, delta_m=-4.0)
    make_run(tmp_path / "y0", arch="mtan", seed=0, acc=0.1, delta_m=5.0)
    comparison = compare(read_runs([tmp_path]))
    assert comparison.ranked_by == "delta_m"
    top = comparison.rows[0]
    assert top.label["arch.name"] == "mtan" and top.delta_m.mean == 5.0 and top.delta_m.std is None
    hps = comparison.rows[1]
    assert hps.delta_m.mean == -3.0 and hps.delta_m.std == pytest.approx(1.41421356)


def test_delta_m_is_empty_when_only_some_runs_have_it(tmp_path):
    make_run(tmp_path / "x0", arch="hps", delta_m=1.0)
    make_run(tmp_path / "y0", arch="mtan")
    comparison = compare(read_runs([tmp_path]))
    assert comparison.ranked_by == "score"
    assert {r.label["arch.name"]: r.delta_m is None for r in comparison.rows} == {"hps": False, "mtan": True}


def test_pareto_set_respects_directions(tmp_path):
    make_run(tmp_path / "best_acc", arch="a1", acc=0.9, mae=3.0)  # best on a
    make_run(tmp_path / "best_mae", arch="a2", acc=0.5, mae=1.0)  # best on b (lower is better)
    make_run(tmp_path / "dominated", arch="a3", acc=0.5, mae=3.0)  # worse than both
    make_run(tmp_path / "middle", arch="a4", acc=0.7, mae=2.0)  # a trade-off point
    comparison = compare(read_runs([tmp_path]))
    pareto = {r.label["arch.name"]: r.pareto for r in comparison.rows}
    assert pareto == {"a1": True, "a2": True, "a3": False, "a4": True}


def test_broken_folders_are_listed_as_incomplete(sweep):
    (sweep / "1" / "summary.json").unlink()
    (sweep / "2" / "summary.json").write_text('{"status": "compl')  # half written
    running = make_run(sweep / "4", arch="hps", seed=2)
    (running / "summary.json").write_text(json.dumps({"status": "running"}))
    (sweep / "5").mkdir()
    (sweep / "5" / "run.log").write_text("")
    (sweep / "5" / "summary.json").write_text("[1, 2]")
    records = {r.path.name: r for r in read_runs([sweep])}
    assert {n: r.status for n, r in records.items()} == {
        "0": "completed",
        "1": "incomplete",
        "2": "incomplete",
        "3": "completed",
        "4": "incomplete",
        "5": "incomplete",
    }
    assert records["1"].reason == "summary.json missing"
    assert "not valid JSON" in records["2"].reason and "running" in records["4"].reason
    comparison = compare(list(records.values()))
    rows = {r.label.get("arch.name"): r for r in comparison.rows}
    assert rows["hps"].status_text() == "1/3 completed, 2 incomplete"
    assert rows["hps"].metrics["a/acc"].n == 1 and rows["single_task"].metrics["a/acc"].n == 1
    assert {p.path.name for p in comparison.problems} == {"1", "2", "4", "5"}


def test_failed_and_diverged_runs_keep_their_reason(tmp_path):
    make_run(tmp_path / "ok", arch="hps")
    make_run(tmp_path / "bad", arch="hps", seed=1, status="diverged")
    record = read_run(tmp_path / "bad")
    assert record.status == "diverged" and record.reason == "it diverged"
    comparison = compare(read_runs([tmp_path]))
    assert comparison.rows[0].status_text() == "1/2 completed, 1 diverged"


def test_by_filter_and_sort(tmp_path):
    make_run(tmp_path / "r0", arch="hps", balancer="ew", acc=0.5, lr=0.01)
    make_run(tmp_path / "r1", arch="hps", balancer="ew", acc=0.7, lr=0.001)
    make_run(tmp_path / "r2", arch="hps", balancer="fixed", acc=0.9)
    make_run(tmp_path / "r3", arch="mtan", balancer="ew", acc=0.3)
    make_run(tmp_path / "r4", arch="mtan", balancer="ew", acc=0.3, dataset="multi_digits")
    runs = read_runs([tmp_path])
    by_arch = compare(runs, by=["arch"], filters={"dataset": "synthetic"})
    assert [r.label for r in by_arch.rows] == [{"arch": "hps"}, {"arch": "mtan"}]
    assert by_arch.rows[0].metrics["a/acc"].n == 3
    assert set(by_arch.pooled) == {"balancer.name", "trainer.lr"}
    both = compare(runs, by=["arch", "balancer"], filters={"dataset.name": "synthetic"}, sort="a")
    assert [tuple(r.label.values()) for r in both.rows] == [("hps", "fixed"), ("hps", "ew"), ("mtan", "ew")]
    worst_first = compare(runs, by=["arch", "balancer"], filters={"dataset": "synthetic"}, sort="-a/acc")
    assert [r.label["balancer"] for r in worst_first.rows] == ["ew", "ew", "fixed"]
    by_lr = compare(runs, by=["trainer.lr"], filters={"trainer.lr": "0.01"})
    assert len(by_lr.rows) == 1 and by_lr.rows[0].label == {"trainer.lr": "0.01"}


def test_only_differing_config_keys_are_reported(sweep):
    comparison = compare(read_runs([sweep]))
    assert comparison.differences == {"arch.name": ["hps", "single_task"], "seed": ["0", "1"]}


def test_finds_runs_below_any_folder_and_skips_hidden_ones(sweep, tmp_path):
    (sweep / ".submitit" / "123").mkdir(parents=True)
    (sweep / ".submitit" / "123" / "summary.json").write_text("{}")
    (sweep / "0" / "checkpoints").mkdir()
    assert [p.name for p in find_run_folders([tmp_path])] == ["0", "1", "2", "3"]
    assert find_run_folders([sweep / "2"]) == [(sweep / "2").resolve()]
    artifacts = tmp_path / "mlruns" / "1" / "abc" / "artifacts"  # a tracker's copy of a summary is not a run
    artifacts.mkdir(parents=True)
    (artifacts / "summary.json").write_text("{}")
    (artifacts / "config.yaml").write_text("seed: 0")
    assert [p.name for p in find_run_folders([tmp_path])] == ["0", "1", "2", "3"]


def test_cli_table(sweep, capsys):
    code, out, _ = run_main([str(sweep)], capsys)
    assert code == 0
    assert "hps" in out and "single_task" in out and "±" in out
    assert "config keys that differ" in out and "pooled" in out


def test_cli_csv_parses(sweep, capsys):
    code, out, _ = run_main([str(sweep), "--format", "csv", "--all-metrics"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["arch.name"] for r in rows] == ["single_task", "hps"]
    assert float(rows[1]["a/acc mean"]) == pytest.approx(0.65)
    assert float(rows[1]["a/acc std"]) == pytest.approx(0.0707107, rel=1e-5)
    assert "a/f1 mean" in rows[0] and rows[0]["completed"] == "2"


def test_cli_json_markdown_and_out_file(sweep, tmp_path, capsys):
    code, out, _ = run_main([str(sweep), "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and len(data["rows"]) == 2 and data["ranked_by"] == "score"
    assert data["rows"][1]["metrics"]["a/acc"]["values"] == [0.6, 0.7]
    target = tmp_path / "report" / "cmp.md"
    code, _, err = run_main([str(sweep), "--format", "md", "--out", str(target)], capsys)
    text = target.read_text()
    assert code == 0 and "wrote" in err
    assert text.startswith("# Comparison") and "| rank (score) | arch |" in text and "## Pareto-optimal" in text


def test_cli_plot_writes_png(sweep, tmp_path, capsys):
    target = tmp_path / "cmp.png"
    code, _, _ = run_main([str(sweep), "--plot", str(target), "--format", "csv"], capsys)
    assert code == 0
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_cli_plot_writes_the_file_it_names_whatever_its_suffix(sweep, tmp_path, capsys):
    target, svg = tmp_path / "figure", tmp_path / "cmp.svg"
    code, _, err = run_main([str(sweep), "--plot", str(target), "--format", "csv"], capsys)
    assert code == 0 and f"wrote {target}" in err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob("figure.*"))
    code, _, _ = run_main([str(sweep), "--plot", str(svg), "--format", "csv"], capsys)
    assert code == 0 and b"<svg" in svg.read_bytes()[:500]
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_cli_plot_without_results_fails_cleanly(tmp_path, capsys):
    make_run(tmp_path / "r", status="failed")
    code, _, err = run_main([str(tmp_path), "--plot", str(tmp_path / "x.png")], capsys)
    assert code == 1 and "nothing to plot" in err and not (tmp_path / "x.png").exists()


def test_cli_user_errors(tmp_path, capsys):
    code, _, err = run_main([str(tmp_path / "nope")], capsys)
    assert code == 2 and "not a folder" in err
    code, _, err = run_main([str(tmp_path)], capsys)
    assert code == 2 and "no run folders" in err
    make_run(tmp_path / "r")
    with pytest.raises(SystemExit) as ex:
        main([str(tmp_path), "--filter", "arch"])
    assert ex.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err


def test_never_unpickles(sweep, monkeypatch, capsys):
    (sweep / "0" / "checkpoints").mkdir()
    (sweep / "0" / "checkpoints" / "last.pt").write_bytes(pickle.dumps({"x": 1}))

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling is not allowed")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    code, out, _ = run_main([str(sweep), "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["rows"]


def test_compare_does_not_import_torch():
    code = "import sys, mtlrun.report.compare, mtlrun.report.sweep; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

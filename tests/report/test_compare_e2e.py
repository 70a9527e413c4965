"""A real sweep, then mtlrun-compare on its folder, as a user would run them."""

from __future__ import annotations

import csv
import io

from mtlrun.report.compare import main as compare_main
from tests.sweep_helpers import SMALL


def test_sweep_then_compare(cli, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line when captured
    result = cli("-m", "arch=hps,single_task", "seed=0,1", *SMALL)
    assert result.code == 0, result.err
    sweeps = list((tmp_path / "multirun").glob("*/*"))
    assert len(sweeps) == 1
    sweep = sweeps[0]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]

    assert compare_main([str(tmp_path / "multirun"), "--by", "arch"]) == 0
    table = capsys.readouterr().out
    lines = [line for line in table.splitlines() if "hps" in line or "single_task" in line]
    assert len([line for line in lines if "completed" in line]) == 2
    assert all("±" in line for line in lines if "completed" in line)
    assert "2/2 completed" in table

    assert compare_main([str(sweep), "--format", "csv", "--plot", str(tmp_path / "cmp.png")]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["arch.name"] for r in rows) == ["hps", "single_task"]
    assert all(r["completed"] == "2" and r["t1/mae std"] and float(r["t1/mae mean"]) > 0 for r in rows)
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"

    (sweep / "1" / "summary.json").unlink()
    assert compare_main([str(sweep), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "summary.json missing" in md and "incomplete" in md
    assert "1/2 completed, 1 incomplete" in md and "2/2 completed" in md

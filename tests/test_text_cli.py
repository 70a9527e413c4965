"""Text end to end, as a new user runs it: a CSV of texts, a sweep over the three text encoders with a
gradient balancer, diagnostics and baselines, then ``mtlrun-compare`` on the sweep."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.conftest import run_subprocess

TASKS = "dataset.tasks={sentiment: {kind: binary}, topic: {kind: classification}, stars: {kind: regression}}"


def write_texts(path: Path, n: int = 90) -> None:
    rng = random.Random(0)
    mood = {1: "good great lovely nice".split(), 0: "bad awful poor dull".split()}
    topics = {"sport": "ball game team match".split(), "food": "soup bread pizza taste".split()}
    rows = []
    for _ in range(n):
        s, t = rng.randint(0, 1), rng.choice(sorted(topics))
        words = rng.choices(mood[s], k=2) + rng.choices(topics[t], k=2) + rng.choices("the a it was very".split(), k=6)
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "sentiment": s, "topic": t, "stars": 2 + 2 * s + rng.random()})
    pd.DataFrame(rows).to_csv(path, index=False)


def test_text_sweep_reports_compares_and_balances(tmp_path):
    write_texts(tmp_path / "reviews.csv")
    result = run_subprocess(
        "-m",
        "dataset=text",
        "dataset.path=reviews.csv",
        TASKS,
        "encoder=transformer,text_cnn,bilstm",
        "balancer=pcgrad",
        "trainer.epochs=1",
        "trainer.batch_size=16",
        "diagnostics.every=2",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.code == 0, result.err[-3000:]
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/summary.json"))
    assert len(runs) == 3
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed", summary.get("error")
        assert set(summary["metrics"]["best"]["test"]) == {"sentiment", "topic", "stars"}
        assert summary["dataset_info"]["text"]["tokenizer"] == "wordpiece"
        transfer = json.loads((run / "transfer.json").read_text())
        assert {t["verdict"] for t in transfer["tasks"].values()} == {"untested (1 seed)"}
        report = (run / "report.md").read_text()
        assert report.startswith("# Negative-transfer report") and all(f"| {t} |" in report for t in transfer["tasks"])
        assert json.loads((run / "diagnostics.json").read_text())
        assert json.loads((run / "tokenizer.json").read_text())["model"]["type"] == "WordPiece"
    encoders = {json.loads((r / "summary.json").read_text())["run"]["encoder"] for r in runs}
    assert encoders == {"transformer", "text_cnn", "bilstm"}
    assert (tmp_path / "sweep" / "sweep_summary.json").is_file()
    compare = Path(sys.executable).with_name("mtlrun-compare")
    out = subprocess.run(
        [str(compare), "sweep", "--format", "md"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    for encoder in encoders:
        assert encoder in out.stdout


def test_same_text_config_and_seed_give_identical_metrics(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("mtlrun.report.plots.plot_run", lambda folder: None)  # plots: the sweep test above
    write_texts(tmp_path / "reviews.csv", n=60)
    args = ["dataset=text", "dataset.path=reviews.csv", TASKS, "encoder=bilstm", "trainer.epochs=1"]
    fast = ["trainer.batch_size=16", "report.baselines=false", "diagnostics.every=0"]
    first = cli(*args, *fast, "seed=3")
    again = tmp_path / "again"
    again.mkdir()
    (again / "reviews.csv").write_bytes((tmp_path / "reviews.csv").read_bytes())
    second = cli(*args, *fast, "seed=3", cwd=again)
    assert first.code == 0 and second.code == 0, (first.err, second.err)
    assert json.dumps(first.summary()["metrics"], sort_keys=True) == json.dumps(
        second.summary()["metrics"], sort_keys=True
    )
    folders = [first.run_dirs()[-1], second.run_dirs()[-1]]
    assert (folders[0] / "tokenizer.json").read_bytes() == (folders[1] / "tokenizer.json").read_bytes()

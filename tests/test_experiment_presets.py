"""The experiment presets: each header says what it reproduces and how to run it, its recorded results
exist and are listed; the study scripts' selection, dominance and statistics rules; the smallest
preset run end to end reproduces its recorded verdicts (slow)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
PRESETS = sorted(p for p in (ROOT / "conf" / "experiment").glob("*.yaml") if p.stem != "optuna_fixed_weights")


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import fair_tuning
        import pareto_front_plot
        import record_study

        yield SimpleNamespace(fair=fair_tuning, pareto=pareto_front_plot, record=record_study)
    finally:
        sys.path.remove(str(EXPERIMENTS))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_each_preset_header_says_what_where_and_how(path):
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    name = path.stem
    assert "Expected" in header, f"{path}: no expected result"
    assert re.search(r"\((?:[^)]*?)(19|20)\d\d", header), f"{path}: no source (paper and year)"
    assert f"experiment={name}" in header or f"sweep={name}" in header or f"{name}.py" in header
    assert re.search(r"about \d+ (min|h)", header), f"{path}: no time"
    assert f"experiments/results/{name}/" in header
    results = EXPERIMENTS / "results" / name
    assert results.is_dir() and any(results.iterdir()), f"{results}: nothing recorded"


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_each_preset_is_listed_in_both_readmes(path):
    assert f"`{path.stem}`" in (EXPERIMENTS / "README.md").read_text()
    assert f"`{path.stem}`" in (ROOT / "README.md").read_text()


def test_the_readme_shows_the_two_pictures():
    readme = (ROOT / "README.md").read_text()
    assert "](experiments/results/toy_conflict/params.png)" in readme
    assert "](experiments/results/pareto_front/pareto_front.png)" in readme
    assert (EXPERIMENTS / "results" / "pareto_front" / "pareto_front.png").read_bytes()[:4] == b"\x89PNG"


def test_dominance_and_the_front(scripts):
    p = scripts.pareto
    fixed = {"a": (0.9, 0.5), "b": (0.7, 0.7), "c": (0.5, 0.9), "d": (0.6, 0.6)}
    assert p.front(fixed) == ["c", "b", "a"]  # d is dominated by b; ordered along task 1
    assert p.place((0.8, 0.8), fixed, p.front(fixed)).startswith("beyond the front (dominates b")
    assert p.place((0.65, 0.65), fixed, p.front(fixed)).startswith("below the front (dominated by b")
    assert p.place((0.95, 0.4), fixed, p.front(fixed)).startswith("on the front")
    assert not p.dominates((0.7, 0.7), (0.7, 0.7))  # equal points do not dominate each other


def test_fair_tuning_budget_is_the_lr_grid_times_the_main_constant(scripts):
    settings = scripts.fair.load_settings()
    assert len(scripts.fair.grid("ew", settings)) == len(settings["lrs"])
    cagrad = scripts.fair.grid("cagrad", settings)
    assert len(cagrad) == len(settings["lrs"]) * len(settings["constants"]["cagrad"]["c"])
    assert {"trainer.lr", "balancer.c"} == set(cagrad[0])
    with pytest.raises(Exception, match="unknown key 'nope'"):
        scripts.fair.load_settings(["nope=1"])
    with pytest.raises(Exception, match="reference=x must be one of methods"):
        scripts.fair.load_settings(["reference=x"])


def _run(left: float, right: float) -> SimpleNamespace:
    summary = SimpleNamespace(
        primary={"left": "accuracy", "right": "accuracy"},
        directions={"left": {"accuracy": True}, "right": {"accuracy": True}},
    )
    return SimpleNamespace(metrics={"left": {"accuracy": left}, "right": {"accuracy": right}}, summary=summary)


def test_fair_tuning_compares_against_tuned_ew_with_welch_and_holm(scripts):
    from scipy import stats

    settings = {"reference": "ew", "alpha": 0.05, "test_seeds": [0, 1, 2]}
    tested = {
        "ew": [_run(0.80, 0.70), _run(0.81, 0.71), _run(0.79, 0.69)],
        "better": [_run(0.90, 0.80), _run(0.91, 0.81), _run(0.89, 0.79)],
        "same": [_run(0.80, 0.70), _run(0.82, 0.69), _run(0.78, 0.71)],
    }
    rows = scripts.fair.compare(settings, tested)
    assert rows["ew"]["mean"] == pytest.approx(0.0, abs=1e-12)  # the reference against its own mean
    ref = {"left": 0.80, "right": 0.70}
    better = [
        100
        * (
            (r.metrics["left"]["accuracy"] - ref["left"]) / ref["left"]
            + (r.metrics["right"]["accuracy"] - ref["right"]) / ref["right"]
        )
        / 2
        for r in tested["better"]
    ]
    assert rows["better"]["delta_m"] == pytest.approx(better)
    p_better = stats.ttest_ind(better, rows["ew"]["delta_m"], equal_var=False).pvalue
    assert rows["better"]["p"] == pytest.approx(p_better)
    assert rows["better"]["p_holm"] == pytest.approx(min(1.0, 2 * min(p_better, rows["same"]["p"])))
    assert rows["better"]["verdict"] == "beats tuned ew"
    assert rows["same"]["verdict"] == "no significant difference"


@pytest.mark.slow
def test_the_smallest_preset_reproduces_its_recorded_verdicts(tmp_path):
    """negative_transfer_demo end to end through the command: hps shows negative transfer on both tasks."""
    import subprocess

    exe = Path(sys.executable).with_name("mtlrun")
    done = subprocess.run(
        [
            str(exe),
            "-m",
            "sweep=negative_transfer_demo",
            "trainer.threads=1",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"report.cache_dir={tmp_path / 'baselines'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reports = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/transfer.json")]
    report = max(reports, key=lambda r: len(r["seeds"]))
    assert len(report["seeds"]) == 5
    for task in ("left", "right"):
        assert report["tasks"][task]["verdict"] == "negative transfer"
        assert report["tasks"][task]["p_adjusted"] < 0.05

"""The report's "What to try": ranked from planted measurements, and never "train all tasks together" beside
a significant negative verdict."""

from __future__ import annotations

import io
import json

from rich.console import Console

from mtlrun.report.advice import next_architecture, pair_conflict, what_to_try
from mtlrun.report.grouping import suggest_grouping
from mtlrun.report.negative_transfer import ReportOptions, build_report, print_verdicts, render_markdown
from mtlrun.report.sweep import print_sweep_advice
from mtlrun.results.baseline_cache import BaselineCache
from mtlrun.results.run_folder import LaunchArguments
from mtlrun.results.transfer_report import (
    NEGATIVE,
    NO_DIFFERENCE,
    MetricTransfer,
    TaskTransfer,
    TransferReport,
)
from tests.report.report_folders import make_job, store_baselines

TASKS = ["t1", "t2", "t3"]
LAUNCH = LaunchArguments(flags=["--config-dir", "my conf"], overrides=["dataset=synthetic", "seed=1"])
#: t1 and t2 help each other, t3 is hurt by both: the best split {t1, t2} | {t3}
SPLIT = {"t1": {"t1": 0.0, "t2": 0.3, "t3": -0.1}, "t2": {"t1": 0.3, "t2": 0.0, "t3": -0.2}}
SPLIT["t3"] = {"t1": -0.1, "t2": -0.1, "t3": 0.0}
#: every task helps every other: one group
TOGETHER = {i: {j: 0.0 if i == j else 0.2 for j in TASKS} for i in TASKS}


def task(verdict: str, delta: float = -8.0) -> TaskTransfer:
    metric = MetricTransfer(mtl=0.6, mtl_std=0.01, stl=0.8, stl_std=0.01, higher_is_better=True, delta=delta)
    return TaskTransfer(
        delta=delta, verdict=verdict, p_value=0.001, p_adjusted=0.003, n_mtl=3, n_stl=3, metrics={"acc": metric}
    )


def report(
    verdicts: dict[str, str],
    *,
    arch: str = "hps",
    balancer: str = "ew",
    encoder: str = "mlp",
    seeds: tuple[int, ...] = (0, 1, 2),
    affinity: dict | None = None,
) -> TransferReport:
    r = TransferReport(
        run={"tasks": TASKS, "arch": arch, "balancer": balancer, "dataset": "synthetic", "encoder": encoder},
        seeds=list(seeds),
        pool={"mode": "sweep", "from": [], "dropped": [], "sweep_job": False},
        tasks={t: task(v) for t, v in verdicts.items()},
        config={"encoder": {"name": encoder}},
    )
    r.grouping = suggest_grouping(TASKS, [affinity] * len(seeds), 2, LAUNCH) if affinity else None
    return r


def conflict(t3_cosine: float, t3_fraction: float) -> dict:
    """Pair measurements: t1-t2 agree; t3's pairs have the planted cosine and conflict fraction."""
    return {("t1", "t2"): (0.4, 0.05), ("t1", "t3"): (t3_cosine, t3_fraction), ("t2", "t3"): (t3_cosine, t3_fraction)}


NEG_T3 = {"t1": NO_DIFFERENCE, "t2": NO_DIFFERENCE, "t3": NEGATIVE}


def kinds(advice: dict) -> list[str]:
    return [c["kind"] for c in advice["candidates"]]


def test_high_conflict_and_a_stable_split_rank_the_split_then_pcgrad_then_the_architecture():
    r = report({"t1": NO_DIFFERENCE, "t2": NEGATIVE, "t3": NEGATIVE}, affinity=SPLIT)
    advice = what_to_try(r, LAUNCH, [conflict(-0.15, 0.7)] * 3, [SPLIT] * 3)
    assert advice["status"] == "negative" and advice["negative_tasks"] == ["t2", "t3"]
    assert kinds(advice) == ["grouping", "balancer", "architecture", "alone"]
    assert [c["rank"] for c in advice["candidates"]] == [1, 2, 3, 4]
    grouping, balancer, arch, alone = advice["candidates"]
    assert "arch=branched" in grouping["command"] and "'arch.branch_at={t1+t2:0,t3:0}'" in grouping["command"]
    assert "affinity into t3 from t1 -0.1000, from t2 -0.2000" in grouping["evidence"]
    assert "stable" in grouping["evidence"] and "not stable" not in grouping["evidence"]
    assert balancer["change"] == "balancer=pcgrad"
    assert "mean cosine -0.150, conflicting on 70% of sampled steps" in balancer["evidence"]
    assert "pairs without t3: mean cosine +0.400, conflicting on 5%" in balancer["evidence"]
    assert arch["change"] == "arch=cgc" and "hard sharing" in arch["evidence"]
    assert alone["command"].endswith("arch=branched 'arch.branch_at={t2:0,t3:0}'")
    assert alone["change"] == "t2, t3 alone"
    assert "each of t2, t3 on its own encoder, t1 keeps its encoder" in alone["reason"]
    for c in advice["candidates"]:  # the run's flags and overrides, its seed replaced by the pooled seeds
        assert c["command"].startswith("mtlrun -m --config-dir 'my conf' dataset=synthetic seed=0,1,2 ")
        assert "seed=1 " not in c["command"]


def test_low_conflict_and_no_split_leave_the_architecture_and_the_fallback():
    r = report(NEG_T3, affinity=TOGETHER)
    advice = what_to_try(r, LAUNCH, [conflict(0.25, 0.2)] * 3, [TOGETHER] * 3)
    assert kinds(advice) == ["architecture", "alone"]
    why = {n["kind"]: n["why"] for n in advice["not_suggested"]}
    assert why["balancer"].startswith("gradient conflict is low") and "mean cosine +0.250" in why["balancer"]
    assert "keeps all tasks together" in why["grouping"]
    text = render_markdown(_filled(r, advice))
    assert "train all tasks together, as this run does" not in text
    assert "contradicts training them all together: see *What to try*" in text
    assert "1. **arch=cgc**" in text and "2. **t3 alone**" in text and "Not suggested:" in text


def test_conflict_on_most_steps_is_high_even_with_a_positive_mean_cosine():
    advice = what_to_try(report(NEG_T3), LAUNCH, [conflict(0.05, 0.55)], [])
    assert kinds(advice) == ["balancer", "architecture", "alone"]
    assert advice["evidence"]["conflict"]["t3"]["high_with"] == ["t1", "t2"]


def test_conflict_is_averaged_over_the_pooled_runs():
    advice = what_to_try(report(NEG_T3), LAUNCH, [conflict(-0.3, 0.9), conflict(0.5, 0.0)], [])
    pair = advice["evidence"]["conflict"]["t3"]["pairs"]["t1"]
    assert abs(pair["mean"] - 0.1) < 1e-12 and abs(pair["frac_negative"] - 0.45) < 1e-12
    assert "balancer" not in kinds(advice)


def test_an_unstable_split_ranks_below_the_architecture():
    noisy = [SPLIT, SPLIT, TOGETHER]
    r = report(NEG_T3)
    r.grouping = suggest_grouping(TASKS, noisy, 2, LAUNCH)
    assert len(r.grouping["groups"]) > 1 and not r.grouping["stable"]
    advice = what_to_try(r, LAUNCH, [], noisy)
    assert kinds(advice) == ["architecture", "grouping"]  # the split is t3 alone: the fallback too
    assert "not stable" in advice["candidates"][1]["evidence"] and advice["candidates"][1]["also"] == ["alone"]
    assert any("not measured" in n["why"] for n in advice["not_suggested"] if n["kind"] == "balancer")


def test_a_conflict_aware_balancer_already_in_use_gives_the_next_one():
    advice = what_to_try(report(NEG_T3, balancer="pcgrad"), LAUNCH, [conflict(-0.2, 0.8)], [])
    [balancer] = [c for c in advice["candidates"] if c["kind"] == "balancer"]
    assert (
        balancer["change"] == "balancer=cagrad" and "conflict stays high under balancer=pcgrad" in balancer["evidence"]
    )


def test_the_balancer_command_drops_the_fixed_weights():
    launch = LaunchArguments(flags=[], overrides=["balancer=fixed", "tasks.weights={t1:30}", "seed=0"])
    advice = what_to_try(report(NEG_T3, balancer="fixed"), launch, [conflict(-0.2, 0.8)], [])
    [balancer] = [c for c in advice["candidates"] if c["kind"] == "balancer"]
    assert balancer["command"] == "mtlrun -m seed=0,1,2 balancer=pcgrad"


def test_a_rep_grad_balancer_is_turned_off_where_the_suggested_architecture_has_no_representation():
    launch = LaunchArguments(flags=[], overrides=["balancer=mgda", "balancer.rep_grad=true", "seed=0"])
    r = report(NEG_T3, balancer="mgda", affinity=SPLIT)
    r.run["balancer_uses"] = {"task_gradients": True, "representation": True}
    r.grouping = suggest_grouping(TASKS, [SPLIT] * 3, 2, launch, r.run["balancer_uses"])
    advice = what_to_try(r, launch, [conflict(0.25, 0.2)] * 3, [SPLIT] * 3)
    changes_arch = [c for c in advice["candidates"] if c["kind"] in ("grouping", "architecture", "alone")]
    assert changes_arch and all(
        c["command"].endswith("balancer.rep_grad=false") and c["command"].count("rep_grad") == 1 for c in changes_arch
    )
    assert all(e["command"].count("balancer.rep_grad=false") == 1 for e in r.grouping["commands"][:1])
    plain = what_to_try(report(NEG_T3, affinity=SPLIT), LAUNCH, [conflict(0.25, 0.2)] * 3, [SPLIT] * 3)
    assert not any("rep_grad" in c["command"] for c in plain["candidates"])  # only where the run used it


def test_a_gradient_balancer_becomes_ew_where_the_suggestion_shares_nothing():
    launch = LaunchArguments(flags=[], overrides=["balancer=pcgrad", "seed=0"])
    every = {t: NEGATIVE for t in TASKS}
    r = report(every, balancer="pcgrad")
    r.run["balancer_uses"] = {"task_gradients": True, "representation": False}
    [alone] = [c for c in what_to_try(r, launch, [], [])["candidates"] if c["kind"] == "alone"]
    assert alone["command"] == "mtlrun -m seed=0,1,2 arch=single_task balancer=ew"
    r = report(NEG_T3, balancer="pcgrad")
    r.run["balancer_uses"] = {"task_gradients": True, "representation": False}
    [alone] = [c for c in what_to_try(r, launch, [], [])["candidates"] if c["kind"] == "alone"]
    assert alone["command"] == "mtlrun -m balancer=pcgrad seed=0,1,2 arch=branched 'arch.branch_at={t3:0}'"
    # t1 and t2 still share an encoder: pcgrad stays


def test_every_task_negative_falls_back_to_single_task_networks():
    advice = what_to_try(report(dict.fromkeys(TASKS, NEGATIVE), arch="mtan"), LAUNCH, [], [])
    assert kinds(advice) == ["alone"]
    assert advice["candidates"][0]["command"].endswith("seed=0,1,2 arch=single_task")
    assert any(n["kind"] == "architecture" and "not hard sharing" in n["why"] for n in advice["not_suggested"])


def test_the_fallback_that_is_the_suggested_split_is_listed_once():
    r = report(NEG_T3, affinity=SPLIT)  # the best split {t1, t2} | {t3} is t3 alone
    advice = what_to_try(r, LAUNCH, [conflict(-0.15, 0.7)] * 3, [SPLIT] * 3)
    assert kinds(advice) == ["grouping", "balancer", "architecture"]
    assert advice["candidates"][0]["also"] == ["alone"]
    assert "(also the alone candidate)" in render_markdown(_filled(r, advice))


def test_architectures_follow_the_encoder_and_the_current_sharing():
    assert next_architecture("hps", "cnn")[0] == "mtan" and next_architecture("hps", "segnet")[0] == "mtan"
    assert next_architecture("hps", "tabular")[0] == "cgc"
    assert next_architecture("mmoe", "mlp")[0] == "cgc" and next_architecture("dselect_k", "cnn")[0] == "cgc"
    assert next_architecture("hps", "mpnn")[0] is None
    assert next_architecture("soft_sharing", "mlp")[0] is None


def test_when_every_task_loses_an_image_encoder_gets_a_column_per_task():
    # MTAN's attention reads one shared backbone, which is what a loss on every task points at
    assert next_architecture("hps", "cnn", every_task_loses=True)[0] == "cross_stitch"
    assert next_architecture("hps", "cnn", every_task_loses=False)[0] == "mtan"
    assert next_architecture("hps", "tabular", every_task_loses=True)[0] == "cgc"  # task experts add capacity


def test_no_negative_verdict_says_there_is_nothing_to_fix():
    r = report(dict.fromkeys(TASKS, NO_DIFFERENCE), affinity=TOGETHER)
    advice = what_to_try(r, LAUNCH, [conflict(-0.5, 0.9)], [TOGETHER] * 3)
    assert advice["status"] == "none" and advice["candidates"] == []
    assert "nothing to fix" in advice["summary"]
    text = render_markdown(_filled(r, advice))
    assert "train all tasks together, as this run does" in text  # no verdict contradicts it


def test_one_seed_ranks_nothing_and_says_why():
    r = report({t: "untested (1 seed)" for t in TASKS}, seeds=(0,))
    r.how_to_get_verdicts = "mtlrun -m seed=0,1,2"
    advice = what_to_try(r, LAUNCH, [conflict(-0.5, 0.9)], [])
    assert advice["status"] == "untested" and advice["candidates"] == []
    assert "1 seed(s) pooled" in advice["summary"] and "nothing is ranked" in advice["summary"]
    assert "How to get verdicts" in render_markdown(_filled(r, advice)).split("## What to try")[1]


def test_what_to_try_round_trips_through_transfer_json():
    r = report(NEG_T3)
    r.what_to_try = what_to_try(r, LAUNCH, [conflict(-0.2, 0.8)], [])
    back = TransferReport.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.what_to_try == r.what_to_try
    assert TransferReport.from_dict({"tasks": {}}).what_to_try is None  # an older transfer.json


def test_pair_conflict_reads_diagnostics_json():
    diagnostics = {"tasks": ["a", "b"], "cosine": {"pairs": {"a|b": {"mean": -0.1, "std": 0.2, "frac_negative": 0.6}}}}
    assert pair_conflict(diagnostics, ["a", "b"]) == {("a", "b"): (-0.1, 0.6)}
    assert pair_conflict(diagnostics, ["b", "a"]) is None and pair_conflict(None, ["a", "b"]) is None


def _filled(r: TransferReport, advice: dict) -> TransferReport:
    r.what_to_try = advice
    r.config = {
        "dataset": {"name": "synthetic"},
        "tasks": TASKS,
        "encoder": {"name": "mlp"},
        "arch": {"name": r.run["arch"]},
        "balancer": {"name": r.run["balancer"]},
        "optimizer": {"optimizer": "adam", "lr": 0.001, "weight_decay": 0.0},
        "epochs": 1,
        "batch_size": 8,
    }
    r.cost = {
        "mtl_parameters": 1,
        "mtl_train_s": 1.0,
        "baseline_parameters": 1,
        "baseline_train_s": 1.0,
        "baselines": 3,
    }
    return r


def test_a_sweep_prints_its_pooled_advice_once_at_the_end(tmp_path):
    """Hand-made jobs of one sweep, task a worse than its baseline on every seed, gradients conflicting."""
    cache = BaselineCache(tmp_path / "outputs" / "baselines")
    jobs = []
    for seed, acc in enumerate((0.60, 0.62, 0.58)):
        job = make_job(tmp_path / "multirun/d/t" / str(seed), seed=seed, acc=acc, mae=1.0, overrides=("arch=hps",))
        diagnostics = {"tasks": ["a", "b"], "cosine": {"pairs": {"a|b": {"mean": -0.2, "frac_negative": 0.8}}}}
        (job / "diagnostics.json").write_text(json.dumps(diagnostics))
        store_baselines(cache, job, 0.80 + seed / 100, 1.0 + seed / 100)
        jobs.append(job)
    reports = [(job, build_report(job, cache, ReportOptions(base=tmp_path))) for job in jobs]
    advice = reports[0][1].what_to_try
    assert advice["status"] == "negative" and advice["negative_tasks"] == ["a"]
    assert kinds(advice) == ["balancer", "architecture", "alone"]
    assert advice["evidence"]["conflict_runs"] == 3
    stream = io.StringIO()
    print_sweep_advice(reports, Console(file=stream, width=100_000))
    out = stream.getvalue()
    assert out.count("what to try against the negative transfer of a") == 1 and "jobs 0, 1, 2:" in out
    stream = io.StringIO()
    print_verdicts(reports[0][1], Console(file=stream, width=100_000))  # a sweep job: advice comes at the end
    assert "what to try" not in stream.getvalue()
    md = (jobs[0] / "report.md").read_text()
    assert "## What to try" in md and "1. **balancer=pcgrad**" in md

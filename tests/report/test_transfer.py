"""Δ_t, Δm, verdicts and task grouping against hand-computed and published values."""

from __future__ import annotations

import math

import pytest

from mtlrun.report.transfer import (
    NEGATIVE,
    NO_DIFFERENCE,
    POSITIVE,
    UNTESTED,
    best_grouping,
    delta_m,
    delta_m_drop,
    grouping_score,
    judge_task,
    relative_change,
    set_partitions,
    task_delta,
)

# NYUv2 rows of the Nash-MTL (Navon et al. 2022) and FAMO (Liu et al. 2023) tables
NYU_DIRECTIONS = {
    "segmentation": {"miou": True, "pix_acc": True},
    "depth": {"abs_err": False, "rel_err": False},
    "normal": {"mean": False, "median": False, "within_11": True, "within_22": True, "within_30": True},
}


def nyu(values):
    keys = [(t, m) for t, ms in NYU_DIRECTIONS.items() for m in ms]
    out: dict = {t: {} for t in NYU_DIRECTIONS}
    for (t, m), v in zip(keys, values):
        out[t][m] = v
    return out


STL = nyu([38.30, 63.76, 0.6754, 0.2780, 25.01, 19.21, 30.14, 57.20, 69.15])
EW = nyu([39.29, 65.33, 0.5493, 0.2263, 28.15, 23.96, 22.09, 47.50, 61.08])
FAMO = nyu([38.88, 64.90, 0.5474, 0.2194, 25.06, 19.57, 29.21, 56.61, 68.98])


def test_delta_m_drop_reproduces_the_published_nyuv2_values():
    assert delta_m_drop(EW, STL, NYU_DIRECTIONS) == pytest.approx(5.59, abs=0.02)
    assert delta_m_drop(FAMO, STL, NYU_DIRECTIONS) == pytest.approx(-4.10, abs=0.02)


def test_delta_m_is_the_mean_of_task_deltas():
    seg = ((39.29 - 38.30) / 38.30 + (65.33 - 63.76) / 63.76) / 2 * 100
    depth = (-(0.5493 - 0.6754) / 0.6754 - (0.2263 - 0.2780) / 0.2780) / 2 * 100
    normal = (
        (
            -(28.15 - 25.01) / 25.01
            - (23.96 - 19.21) / 19.21
            + (22.09 - 30.14) / 30.14
            + (47.50 - 57.20) / 57.20
            + (61.08 - 69.15) / 69.15
        )
        / 5
        * 100
    )
    assert task_delta(EW["segmentation"], STL["segmentation"], NYU_DIRECTIONS["segmentation"]) == pytest.approx(seg)
    assert delta_m(EW, STL, NYU_DIRECTIONS) == pytest.approx((seg + depth + normal) / 3)


def test_relative_change_signs_and_zero_baseline():
    assert relative_change(0.9, 0.8, True) == pytest.approx(12.5)
    assert relative_change(0.9, 0.8, False) == pytest.approx(-12.5)  # lower is better: an increase hurts
    assert relative_change(1.0, 0.0, True) is None  # undefined: excluded, never a division by zero
    assert task_delta({"a": 1.0, "b": 0.5}, {"a": 0.0, "b": 1.0}, {"a": True, "b": True}) == pytest.approx(-50.0)


def test_a_task_whose_baseline_scores_zero_everywhere_is_untested_not_no_difference():
    mtl = [{"acc": v} for v in (0.1, 0.2, 0.1)]
    stl = [{"acc": 0.0} for _ in range(3)]
    v = judge_task("t", mtl, stl, {"acc": True})
    assert v.delta is None and v.verdict.startswith("untested") and "acc" in v.verdict and v.excluded == ["acc"]


def test_verdict_negative_for_a_large_consistent_drop():
    mtl = [{"acc": v} for v in (0.70, 0.71, 0.69)]
    stl = [{"acc": v} for v in (0.90, 0.91, 0.89)]
    v = judge_task("t", mtl, stl, {"acc": True})
    assert v.verdict == NEGATIVE and v.p_value < 0.05 and v.delta == pytest.approx((0.70 - 0.90) / 0.90 * 100)


def test_verdict_positive_and_lower_is_better():
    mtl = [{"mae": v} for v in (1.0, 1.1, 0.9)]
    stl = [{"mae": v} for v in (2.0, 2.1, 1.9)]
    v = judge_task("t", mtl, stl, {"mae": False})
    assert v.verdict == POSITIVE and v.delta > 0


def test_verdict_no_difference_for_equal_distributions():
    same = [{"acc": v} for v in (0.80, 0.82, 0.78)]
    v = judge_task("t", same, list(reversed(same)), {"acc": True})
    assert v.verdict == NO_DIFFERENCE and v.p_value > 0.05


def test_verdict_untested_with_one_seed():
    v = judge_task("t", [{"acc": 0.5}], [{"acc": 0.9}], {"acc": True})
    assert v.verdict == "untested (1 seed)" and v.p_value is None and v.delta < 0 and v.ci is None


def test_two_seeds_are_not_enough_for_a_verdict():
    """Two seeds on each side with a large drop: today's test called it negative transfer."""
    mtl = [{"acc": v} for v in (0.70, 0.71)]
    stl = [{"acc": v} for v in (0.90, 0.91)]
    v = judge_task("t", mtl, stl, {"acc": True})
    assert v.verdict == "untested (2 seeds)" and v.verdict.startswith(UNTESTED) and v.p_value is None
    assert v.ci is not None and v.ci[1] < 0  # the interval is still reported
    assert judge_task("t", mtl, stl, {"acc": True}, min_seeds=2).verdict == NEGATIVE


def test_set_partitions_count_stirling_numbers():
    assert len(list(set_partitions(list("abcd"), 2))) == 7
    assert len(list(set_partitions(list("abcde"), 3))) == 25
    for p in set_partitions(list("abcde"), 2):
        assert sorted(x for g in p for x in g) == list("abcde")


def test_best_grouping_pairs_the_tasks_that_help_each_other():
    names = ["a", "b", "c", "d"]
    z = {i: {j: 0.0 for j in names} for i in names}
    z["a"]["b"] = z["b"]["a"] = 0.5
    z["c"]["d"] = z["d"]["c"] = 0.4
    z["a"]["c"] = z["c"]["a"] = -0.3
    result = best_grouping(names, z, 2)
    assert sorted(map(sorted, result["groups"])) == [["a", "b"], ["c", "d"]]
    assert result["score"] == pytest.approx(1.8) and result["exhaustive"]
    assert grouping_score([["a", "c"], ["b", "d"]], z) == pytest.approx(-0.6)
    assert math.isclose(grouping_score([["a"], ["b"], ["c"], ["d"]], z), 0.0)

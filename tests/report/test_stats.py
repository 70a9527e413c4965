"""The report's statistics against scipy on known numbers, and Holm's correction by hand."""

from __future__ import annotations

import pytest

from mtlrun.report.stats import adjust, holm, welch
from mtlrun.report.transfer import NEGATIVE, NO_DIFFERENCE, decide, judge_task

A = [10.1, 9.8, 10.4, 10.0, 9.9]
B = [9.2, 9.9, 8.8, 9.5]


def test_welch_matches_scipy_two_sided_test_and_interval():
    from scipy import stats

    reference = stats.ttest_ind(A, B, equal_var=False)
    result = welch(A, B)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    low, high = reference.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low, rel=1e-10), pytest.approx(high, rel=1e-10))
    assert result.df == pytest.approx(reference.df, rel=1e-10)
    assert result.difference == pytest.approx(sum(A) / 5 - sum(B) / 4)


def test_welch_degenerate_and_too_small_samples():
    assert welch([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    constant = welch([2.0, 2.0], [1.0, 1.0])
    assert constant.p_value == 0.0 and constant.ci_low == constant.ci_high == 1.0
    with pytest.raises(ValueError):
        welch([1.0], [1.0, 2.0])


def test_holm_by_hand():
    # sorted: c 0.01 (x3 = 0.03), a 0.02 (x2 = 0.04), b 0.04 (x1 = 0.04); monotone, capped at 1
    assert holm({"a": 0.02, "b": 0.04, "c": 0.01}) == pytest.approx({"a": 0.04, "b": 0.04, "c": 0.03})
    # the step-down max: 0.03·3 = 0.09 > 0.04·2 = 0.08, so b keeps 0.09
    assert holm({"a": 0.03, "b": 0.04, "c": 0.5}) == pytest.approx({"a": 0.09, "b": 0.09, "c": 0.5})
    assert holm({"a": 0.6, "b": 0.7}) == pytest.approx({"a": 1.0, "b": 1.0})
    assert adjust({"a": 0.02}, "none") == {"a": 0.02}


def test_two_sided_test_at_alpha_not_the_one_sided_test_at_two_alpha():
    """A drop whose one-sided p is below 0.05 but whose two-sided p is not: no verdict at alpha 0.05."""
    from scipy import stats

    mtl = [{"acc": v} for v in (0.80, 0.78, 0.82)]
    stl = [{"acc": v} for v in (0.84, 0.82, 0.86)]
    scores_mtl = [(r["acc"] - 0.84) / 0.84 * 100 for r in mtl]
    scores_stl = [(r["acc"] - 0.84) / 0.84 * 100 for r in stl]
    one_sided = stats.ttest_ind(scores_mtl, scores_stl, equal_var=False, alternative="less").pvalue
    two_sided = stats.ttest_ind(scores_mtl, scores_stl, equal_var=False).pvalue
    assert one_sided < 0.05 < two_sided  # the case the old test got wrong
    verdict = judge_task("t", mtl, stl, {"acc": True}, alpha=0.05)
    assert verdict.verdict == NO_DIFFERENCE and verdict.p_value == pytest.approx(two_sided)
    ci = stats.ttest_ind(scores_mtl, scores_stl, equal_var=False).confidence_interval(0.95)
    assert verdict.ci == (pytest.approx(ci.low), pytest.approx(ci.high)) and ci.low < verdict.delta < ci.high


def test_holm_correction_across_tasks_changes_marginal_verdicts():
    a = judge_task(
        "a", [{"acc": v} for v in (0.80, 0.79, 0.81)], [{"acc": v} for v in (0.83, 0.82, 0.85)], {"acc": True}
    )
    b = judge_task(
        "b", [{"acc": v} for v in (0.80, 0.78, 0.81)], [{"acc": v} for v in (0.84, 0.82, 0.85)], {"acc": True}
    )
    assert a.p_value is not None and b.p_value is not None
    assert b.p_value < a.p_value < 0.05 and a.verdict == b.verdict == NEGATIVE  # each alone is significant
    verdicts = {"a": a, "b": b}
    decide(verdicts, alpha=0.05, correction="holm")
    assert b.p_adjusted == pytest.approx(2 * b.p_value)  # the smaller of two: times 2
    assert a.p_adjusted == pytest.approx(max(2 * b.p_value, a.p_value))  # times 1, but never below b's
    assert a.p_adjusted > 0.05 and a.verdict == b.verdict == NO_DIFFERENCE
    decide(verdicts, alpha=0.05, correction="none")
    assert a.p_adjusted == a.p_value and a.verdict == NEGATIVE

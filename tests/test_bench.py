"""The pieces of ``make bench`` that decide what BENCHMARKS.md says (no timing is asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench_modules():
    sys.path.insert(0, str(BENCH))
    try:
        import common
        import run_all
        import startup

        yield common, run_all, startup
    finally:
        sys.path.remove(str(BENCH))


def test_rewrite_keeps_everything_below_the_marker(bench_modules):
    _, run_all, _ = bench_modules
    text = f"# Benchmarks\nold rows\n{run_all.MARKER}\n\n## Kept\nby hand\n"
    assert run_all.kept_part(text) == "## Kept\nby hand\n"
    # a file from before the marker existed is kept whole, less its title
    assert run_all.kept_part("# Benchmarks\n\n## Balancers\nrows\n") == "## Balancers\nrows\n"


def test_write_is_atomic_and_complete(tmp_path, bench_modules):
    _, run_all, _ = bench_modules
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("old")
    run_all.write_atomically(path, "new text")
    assert path.read_text() == "new text"
    assert [p.name for p in tmp_path.iterdir()] == ["BENCHMARKS.md"]  # no temporary file left


def test_rows_say_whether_they_meet_their_target(bench_modules):
    common, run_all, _ = bench_modules
    fast = common.Row("step", 0.97, 0.95, ">=", "")
    slow = common.Row("step", 0.90, 0.95, ">=", "")
    startup = common.Row("startup", 1.4, 1.0, "<=", "", unit=" s")
    untargeted = common.Row("info", 2.0, None, "<=", "")
    assert [r.meets for r in (fast, slow, startup, untargeted)] == ["yes", "no", "no", "-"]
    table = run_all.rows_table([fast, startup])
    assert "| step | 0.97x | >= 0.95x | yes |" in table and "| startup | 1.40 s | <= 1 s | no |" in table


def test_interleave_alternates_and_records_each_round(bench_modules):
    common, _, _ = bench_modules
    calls: list[str] = []
    a = common.Timed("a", lambda n: calls.append("a"))
    b = common.Timed("b", lambda n: calls.append("b"))
    common.interleave([a, b], rounds=3, units=2, warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]  # order flips every round
    assert len(a.times) == len(b.times) == 3


def test_importtime_parse_counts_a_package_once_at_its_outermost_imports(bench_modules):
    _, _, startup = bench_modules
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       400 |        400 |     torch._C",
            "import time:       600 |       1000 |   torch",
            "import time:       100 |        100 |     scipy.linalg",
            "import time:       200 |        300 |   scipy",
            "import time:       500 |       1800 | torchmetrics",
            "import time:        50 |         50 | mtlrun",
        ]
    )
    found = startup.parse_importtime(stderr)
    # a package counts once, at its outermost modules; packages nested in others count in both
    assert found["torch"] == pytest.approx(1000e-6) and found["scipy"] == pytest.approx(300e-6)
    assert found["torchmetrics"] == pytest.approx(1800e-6)
    assert found["total"] == pytest.approx(1850e-6) and "pandas" not in found


def test_ratio_is_the_median_of_per_round_ratios(bench_modules):
    common, _, _ = bench_modules
    # rounds 2 and 3 ran under a load spike (round 2 hit the fast side); per round the fast side
    # takes 0.5x, 2x, 0.4x: the median ratio is 0.5, while the ratio of the medians would be 2
    fast = common.Timed("fast", lambda n: None, times=[1.0, 4.0, 4.0])
    slow = common.Timed("slow", lambda n: None, times=[2.0, 2.0, 10.0])
    assert common.paired_ratio(fast, slow) == 0.5
    assert fast.median / slow.median == 2.0

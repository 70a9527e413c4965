"""The default ``make run`` end to end: wall time and peak memory of ``mtlrun`` with no arguments.

Runs in a fresh temporary folder, so the single-task baselines are trained (as on a first
``make run``) and the report is written. Peak memory is the largest resident set of the process
(``getrusage`` of the children). The summary's own timings split the wall time into setup,
training, evaluation and the rest (imports, baselines, report).

    .venv/bin/python bench/endtoend.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Row

TARGET_S = 60.0
#: runs the command given as arguments and prints its peak resident set (KiB); a wrapper process of
#: its own, so the figure is that command's and not any earlier child's of the caller
MEASURE = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def default_run(args: list[str] | None = None) -> tuple[float, float, dict]:
    """(wall seconds, peak resident MiB, the summary's timings) of ``mtlrun`` in a fresh folder."""
    mtlrun = str(Path(sys.executable).with_name("mtlrun"))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, mtlrun, *(args or [])], cwd=tmp, capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - start
        peak_mib = int(out.stdout.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB on Linux
        summaries = sorted(Path(tmp).glob("outputs/*/*/summary.json"))
        timings = json.loads(summaries[-1].read_text()).get("timings", {}) if summaries else {}
    return wall, peak_mib, timings


def endtoend_row() -> Row:
    wall, peak, t = default_run()
    parts = ", ".join(f"{k.removesuffix('_s')} {t[k]:.1f} s" for k in ("setup_s", "train_s", "eval_s") if k in t)
    return Row(
        "`make run` (default `mtlrun`: MTL run, 4 baselines, report), wall time",
        wall,
        TARGET_S,
        "<=",
        f"peak memory {peak:.0f} MiB; of the run itself: {parts}",
        unit=" s",
    )


if __name__ == "__main__":
    print(" | ".join(endtoend_row().cells()))

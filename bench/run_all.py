"""``make bench``: measure every overhead row and rewrite the top of BENCHMARKS.md.

Everything above the marker line of BENCHMARKS.md is replaced by this run's results: the
machine, one table of rows (each a ratio or a difference of two things measured side by side in
this run, with its target), the import times of the run path and a profile of the default step.
Everything below the marker (sections written by hand, results of the longer scripts run by
hand) is kept as it is. The file is written atomically.

The in-process rows run with one torch thread by default (``--threads``): they measure the
framework's overhead, and on a machine shared with other jobs a second thread mostly measures
contention. The startup and ``make run`` rows run ``mtlrun`` as a user does, with torch's own
thread default.

    .venv/bin/python bench/run_all.py [--rounds 10] [--steps 10] [--threads 1] [--output BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import torch
from common import Row, machine

MARKER = "<!-- make bench rewrites everything above this line; sections below it are kept -->"


def kept_part(text: str) -> str:
    """What follows the marker; a file without one is kept whole, less its title line."""
    if MARKER in text:
        return text.split(MARKER, 1)[1].lstrip("\n")
    if text.startswith("# "):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    return text.lstrip("\n")


def rows_table(rows: list[Row]) -> str:
    lines = ["| row | measured | target | meets | times |", "|---|---:|---:|:---:|---|"]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def render(info: dict[str, str], load_end: str, minutes: float, args, rows: list[Row], imports: str, prof: str) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = "\n".join(f"- {k}: {v}" for k, v in info.items())
    missed = [r.name for r in rows if r.meets == "no"]
    verdict = "every row meets its target" if not missed else f"{len(missed)} row(s) miss their target"
    return f"""# Benchmarks

Written by `make bench` (`bench/run_all.py`) on {when}, in {minutes:.1f} min; {verdict}.
Each row is measured side by side in this one run: the two sides alternate within each round
(the order flips every round), the ratio is taken within each round and the median of those
ratios is shown, so a change of machine load during the run hits both sides alike. Absolute times
(medians) are in the last column; on a machine shared with other jobs they vary from run to run,
the ratios less, but still by several percent: rerun before reading much into a row near its
target.

{facts}
- load average at the end: {load_end}
- in-process rows: {args.threads} torch thread(s), {args.rounds} rounds of {args.steps} steps (epochs: 1 per round;
  gradient methods: {2 * args.rounds} rounds of {max(1, args.steps // 2)} steps)

{rows_table(rows)}

How the rows are taken (the scripts' docstrings say more):

- step and epoch rows (`bench/overhead.py`): mtlrun's own trainer (`Trainer.training_step`,
  `train_epoch`) against a hand-written loop on a copy of the same model (same initial weights),
  the same batches and `torch.optim.Adam`: `zero_grad`, forward, sum of losses, `backward`, `step`.
  A ratio above 1 means mtlrun was the faster side in this run (noise).
- evaluation: what the metrics cost (the issue's row): torchmetrics reset, update and compute on
  the predictions of one validation pass, over the training epoch. The whole validation pass
  (forward, losses, metrics) is shown too, without a target: its forward passes alone are about
  (validation / training samples) x (forward / training step) of an epoch, 0.2 x 0.4 = 8% here.
- gradient methods: a step of each method against the floor any method that needs per-task
  gradients pays: one forward and T backward passes through the whole model, then the Adam step.
- startup (`bench/startup.py`): fresh processes; the run is stopped when it logs the line written
  just before the first training step. A hand-written loop's `torch.optim.Adam` imports
  `torch._dynamo` when it is built (the figure in the row's last column); mtlrun's optimizers
  (`mtlrun/train/optimizers.py`) and its deterministic mode (`mtlrun/train/seeding.py`) do not.
- `make run` (`bench/endtoend.py`): `mtlrun` with no arguments in an empty folder, so the four
  single-task baselines are trained and the report is written, as on a first `make run`.

### Imports of the run path

`python -X importtime -c "import mtlrun.train.run"`: seconds spent importing each package
(its outermost modules wherever imported; nested packages count in both), median of 3. pandas,
PIL, scipy, scikit-learn, matplotlib and torchmetrics are loaded when first used (`mtlrun/lazy.py`);
a run loads torchmetrics (and through it scipy and matplotlib) when it builds its metrics, and
matplotlib again for the plots after training.

{imports}

### Profile of the default step

`bench/profile_step.py`: cProfile of the trainer's steps and of one validation pass on the default
workload, own time grouped by where the code lives.

```
{prof}
```

{MARKER}

"""


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main() -> None:
    import endtoend
    import overhead
    import profile_step
    import startup

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent.parent / "BENCHMARKS.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    info = machine()
    print(f"make bench: {info}", flush=True)

    def stage(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {name}", flush=True)

    stage("training step, epoch, evaluation and gradient-method rows")
    rows = overhead.all_rows(args.rounds, args.steps)
    stage("startup rows")
    rows += startup.startup_rows(5)
    stage("make run, end to end")
    rows.append(endtoend.endtoend_row())
    stage("import times")
    imports = startup.importtime_table("import mtlrun.train.run", 3)
    stage("profile")
    prof = profile_step.report(2 * args.steps)
    load_end = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    output = Path(args.output)
    old = output.read_text() if output.exists() else ""
    minutes = (time.perf_counter() - started) / 60
    write_atomically(output, render(info, load_end, minutes, args, rows, imports, prof) + kept_part(old))
    for row in rows:
        print(" | ".join(row.cells()))
    stage(f"{output} written")


if __name__ == "__main__":
    main()

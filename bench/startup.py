"""How long ``mtlrun`` takes before it trains, against ``python -c "import torch"``.

Three commands run as fresh processes in interleaved rounds (each row: the median over rounds of
the command's time minus the reference's in the same round): the reference
``python -c "import torch"``; ``mtlrun --help``; and the default run until it logs ``training ...``,
the line written just before the first training step (the process is then stopped). A fourth,
``import torch`` plus building one ``torch.optim.Adam``, shows what any hand-written loop pays
before its first step: torch.optim imports ``torch._dynamo`` when an optimizer adds its first
parameter group (mtlrun's own optimizers, ``mtlrun.train.optimizers``, skip that import).

``python -X importtime -c "import mtlrun.train.run"`` gives the cumulative import time of the
heavy packages; ``--before DIR`` adds a column for another copy of the package (a checkout's
``mtlrun`` folder is taken from DIR through ``PYTHONPATH``).

    .venv/bin/python bench/startup.py [--rounds 3] [--before /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Row

TARGET_S = 1.0
#: packages whose import time the importtime table reports (when they are imported at all)
PACKAGES = (
    "torch",
    "hydra",
    "omegaconf",
    "rich",
    "numpy",
    "torchmetrics",
    "scipy",
    "sklearn",
    "matplotlib",
    "pandas",
    "PIL",
    "torch._dynamo",
)
RUN_STARTED = "training hps on"


def mtlrun_command() -> str:
    return str(Path(sys.executable).with_name("mtlrun"))


def run_until(argv: list[str], cwd: str, until: str | None, timeout: float = 600) -> float:
    """Seconds from launching ``argv`` until it exits (``until=None``) or prints ``until``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    start = time.perf_counter()
    if until is None:
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - start
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        assert p.stdout is not None
        for line in p.stdout:
            if until in line:
                elapsed = time.perf_counter() - start
                p.kill()
                return elapsed
            if time.perf_counter() - start > timeout:
                p.kill()
                break
    raise RuntimeError(f"{' '.join(argv)} ended without printing {until!r}")


def startup_rows(rounds: int) -> list[Row]:
    python = sys.executable
    commands = {
        "import torch": ([python, "-c", "import torch"], None),
        "import torch + Adam": (
            [python, "-c", "import torch; torch.optim.Adam(torch.nn.Linear(2, 2).parameters())"],
            None,
        ),
        "mtlrun --help": ([mtlrun_command(), "--help"], None),
        "run to first step": ([mtlrun_command(), "trainer.epochs=1", "report.baselines=false"], RUN_STARTED),
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds + 1):  # round 0 warms the page cache, not recorded
            order = list(commands) if r % 2 == 0 else list(reversed(commands))
            for name in order:
                argv, until = commands[name]
                seconds = run_until(argv, tmp, until)
                if r > 0:
                    times[name].append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    torch_s = med["import torch"]

    def extra(name: str) -> float:
        """Median over rounds of ``name``'s time minus ``import torch``'s in the same round."""
        return statistics.median(a - b for a, b in zip(times[name], times["import torch"]))

    return [
        Row(
            "startup: `mtlrun --help` minus `python -c 'import torch'`",
            extra("mtlrun --help"),
            TARGET_S,
            "<=",
            f"{med['mtlrun --help']:.2f} s vs {torch_s:.2f} s",
            unit=" s",
        ),
        Row(
            "startup: default run until its first training step, minus `import torch`",
            extra("run to first step"),
            TARGET_S,
            "<=",
            f"{med['run to first step']:.2f} s vs {torch_s:.2f} s; a bare loop's `import torch` + first "
            f"`Adam` takes {med['import torch + Adam']:.2f} s (+{extra('import torch + Adam'):.2f} s)",
            unit=" s",
        ),
    ]


def import_times(statement: str, pythonpath: str | None = None) -> dict[str, float]:
    """Seconds spent importing each of :data:`PACKAGES` (the sum over its outermost modules in the
    import tree, wherever they were imported from) during ``statement``, and the total."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return parse_importtime(out.stderr)


def parse_importtime(stderr: str) -> dict[str, float]:
    """Seconds per package of :data:`PACKAGES` and ``total`` from ``-X importtime`` output."""
    entries = []  # (depth, module, cumulative seconds), children listed before their parent
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        if not cumulative.strip().isdigit():
            continue  # the header line
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        entries.append((depth, name.strip(), int(cumulative) / 1e6))
    found: dict[str, float] = {}
    total = 0.0
    ancestors: list[tuple[int, str]] = []
    for depth, module, seconds in reversed(entries):  # parents first
        while ancestors and ancestors[-1][0] >= depth:
            ancestors.pop()
        if depth == 0:
            total += seconds
        for package in PACKAGES:
            inside = module == package or module.startswith(package + ".")
            if inside and not any(a == package or a.startswith(package + ".") for _, a in ancestors):
                found[package] = found.get(package, 0.0) + seconds  # a package's outermost imports
        ancestors.append((depth, module))
    found["total"] = total
    return found


def importtime_table(statement: str, rounds: int, before: str | None = None) -> str:
    """A markdown table of :func:`import_times` (median of ``rounds``), with ``before`` if given."""
    columns = {"now": None} if before is None else {"before": before, "now": None}
    samples: dict[str, list[dict[str, float]]] = {c: [] for c in columns}
    for r in range(rounds):
        order = list(columns) if r % 2 == 0 else list(reversed(columns))
        for c in order:
            samples[c].append(import_times(statement, columns[c]))
    names = [p for p in (*PACKAGES, "total") if any(p in s for runs in samples.values() for s in runs)]

    def cell(c: str, p: str) -> str:
        values = [s[p] for s in samples[c] if p in s]
        return f"{statistics.median(values):.2f}" if values else "not imported"

    lines = ["| package | " + " | ".join(f"{c} (s)" for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += [f"| {p} | " + " | ".join(cell(c, p) for c in columns) + " |" for p in names]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="a folder holding another copy of the mtlrun package")
    parser.add_argument("--importtime-only", action="store_true")
    args = parser.parse_args()
    statement = "import mtlrun.train.run"
    print(f"`python -X importtime -c '{statement}'`, cumulative seconds, median of {args.rounds}:\n")
    print(importtime_table(statement, args.rounds, args.before))
    if not args.importtime_only:
        for row in startup_rows(args.rounds):
            print(" | ".join(row.cells()))


if __name__ == "__main__":
    main()

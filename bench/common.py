"""What the ``make bench`` scripts share: the machine line, interleaved timing, and result rows.

Every row of BENCHMARKS.md is a ratio of two things timed side by side in one process run:
configurations alternate within each round (the order flips every round), the ratio is taken
within each round, and the median of the per-round ratios is reported, so a change in machine
load during the run hits both sides alike. Absolute times (medians) are shown next to the ratio,
never instead of it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """The facts a reader needs to compare figures across machines."""
    load = "n/a"
    if hasattr(os, "getloadavg"):
        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    device = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "load average (1, 5, 15 min)": load,
    }


@dataclass
class Row:
    """One line of the results table: ``ratio`` against ``target`` with the direction ``sense``."""

    name: str
    ratio: float | None
    target: float | None
    sense: str  # ">=" or "<="
    detail: str
    unit: str = "x"

    @property
    def meets(self) -> str:
        if self.ratio is None or self.target is None:
            return "-"
        ok = self.ratio >= self.target if self.sense == ">=" else self.ratio <= self.target
        return "yes" if ok else "no"

    def cells(self) -> list[str]:
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}{self.unit}"
        target = "-" if self.target is None else f"{self.sense} {self.target:g}{self.unit}"
        return [self.name, ratio, target, self.meets, self.detail]


@dataclass
class Timed:
    """A configuration to time: ``run(n)`` does ``n`` units of work; per-unit times per round."""

    label: str
    run: Callable[[int], None]
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def paired_ratio(numerator: Timed, denominator: Timed) -> float:
    """Median over rounds of ``numerator``'s time over ``denominator``'s time in the same round.

    The two sides of one round ran seconds apart, under nearly the same machine load, so their
    ratio is steadier than the ratio of the two medians when the load changes during the run.
    """
    return statistics.median(n / d for n, d in zip(numerator.times, denominator.times))


def interleave(cases: list[Timed], rounds: int, units: int, warmup: int = 1, sync: bool = False) -> None:
    """Time every case ``rounds`` times, alternating cases within a round and flipping their order
    every round; ``warmup`` untimed rounds first. Records seconds per unit in ``case.times``."""
    for r in range(warmup + rounds):
        order = cases if r % 2 == 0 else list(reversed(cases))
        for case in order:
            if sync:
                torch.cuda.synchronize()
            start = time.perf_counter()
            case.run(units)
            if sync:
                torch.cuda.synchronize()
            if r >= warmup:
                case.times.append((time.perf_counter() - start) / units)


def compose(overrides: list[str]):
    """The composed run config for ``overrides`` (as ``mtlrun`` would compose it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from mtlrun.config.schema import register_schema

    register_schema()
    with initialize_config_module("mtlrun.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    aligns = ["---" if i == 0 or not h.endswith(("s", "x", "%")) else "---:" for i, h in enumerate(header)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)

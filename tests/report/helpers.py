"""Write run folders by hand (JSON and YAML only), as a finished mtlrun run would leave them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

DIRECTIONS = {"a": {"acc": True, "f1": True}, "b": {"mae": False}}
PRIMARY = {"a": "acc", "b": "mae"}


def make_run(
    folder: Path,
    *,
    arch: str = "hps",
    balancer: str = "ew",
    seed: int = 0,
    acc: float = 0.5,
    mae: float = 1.0,
    status: str = "completed",
    delta_m: float | None = None,
    dataset: str = "synthetic",
    lr: float = 0.001,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".hydra").mkdir(exist_ok=True)
    config = {
        "seed": seed,
        "dataset": {"name": dataset, "num_samples": 600},
        "arch": {"name": arch},
        "balancer": {"name": balancer},
        "trainer": {"epochs": 2, "lr": lr},
    }
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    hydra = {
        "hydra": {
            "runtime": {"choices": {"arch": arch, "balancer": balancer, "dataset": dataset, "hydra/launcher": "basic"}}
        }
    }
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    test = {"a": {"acc": acc, "f1": acc / 2}, "b": {"mae": mae}}
    summary = {
        "status": status,
        "run": {"dataset": dataset, "arch": arch, "balancer": balancer, "seed": seed},
        "primary": PRIMARY,
        "directions": DIRECTIONS,
    }
    if status == "completed":
        summary["metrics"] = {"best": {"epoch": 2, "val": test, "test": test}, "last": {"epoch": 2, "test": test}}
    else:
        summary["error"] = f"it {status}"
    (folder / "summary.json").write_text(json.dumps(summary))
    if delta_m is not None:
        (folder / "transfer.json").write_text(json.dumps({"delta_m": delta_m, "delta_m_drop": -delta_m}))
    return folder

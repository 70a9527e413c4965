"""Single-task baselines (STL): trained automatically, cached, and trained together.

The STL baseline of task t is the run with the same dataset, encoder, head, trainer budget and
seed, ``arch=single_task``, ``balancer=ew`` and task set {t}. Results are cached as one JSON file
per baseline under the outputs root, keyed by a hash of exactly those settings (not the run's
architecture, balancer or other tasks), so every run and sweep that needs the same baseline
reuses it.

The missing baselines of a run are trained in one process as one model: K single-task networks
side by side, each initialised from the same RNG state a one-task run would use, clipped per
task, with the best epoch chosen per task. Where the encoder allows, the K networks are computed
as grouped layers (one batched matmul per layer, see ``mtlrun.models.grouped``); otherwise as K
networks under one optimizer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig

from mtlrun.balancers.weighting import EqualWeighting
from mtlrun.config.schema import plain
from mtlrun.data.base import MultiTaskDataset
from mtlrun.data.multi_input import is_multi_input
from mtlrun.models import ARCHS, EncoderSpec, MultiTaskModel
from mtlrun.models.grouped import GroupedSingleTask
from mtlrun.models.multi_input import prepare_multi_input
from mtlrun.results.baseline_cache import BaselineCache, baseline_key, baseline_settings
from mtlrun.train.devices import compile_model
from mtlrun.train.loop import Trainer
from mtlrun.train.records import EpochRecord
from mtlrun.train.seeding import seed_everything

log = logging.getLogger("mtlrun")


def _best_epoch(records: Sequence[EpochRecord], task: str, metric: str, higher: bool) -> EpochRecord:
    sign = 1.0 if higher else -1.0
    return max(records, key=lambda r: (sign * r.val[task][metric], -r.epoch))


def train_baselines(
    cfg: DictConfig,
    data: MultiTaskDataset,
    tasks: Sequence[str],
    primary: Mapping[str, str],
    encoder: EncoderSpec,
    device: torch.device,
    mode: str = "auto",
) -> dict[str, dict[str, Any]]:
    """Train the single-task baselines of ``tasks`` together; return one record per task."""
    if is_multi_input(data) and len(tasks) > 1:  # each on its own split, with its own epoch length
        return {k: v for name in tasks for k, v in train_baselines(cfg, data, [name], primary, encoder, device).items()}
    t = cfg.trainer
    subset = data.select(list(tasks))
    primary = {name: primary[name] for name in tasks}
    specs = [subset.tasks[name] for name in tasks]
    seed_everything(cfg.seed, t.deterministic)
    multi_input = is_multi_input(data)  # K networks on K different inputs: no grouped form
    grouped = GroupedSingleTask.build(encoder, specs) if mode in ("auto", "grouped") and not multi_input else None
    layout = "grouped" if grouped is not None else "separate"
    model: MultiTaskModel
    if grouped is not None:
        model = grouped
    else:
        seed_everything(cfg.seed, t.deterministic)
        model = ARCHS.build("single_task", {}, encoder=encoder, tasks=specs)
        prepare_multi_input(model, subset, "single_task")
    model.to(device)
    if t.get("compile"):
        compile_model(model)
    balancer = EqualWeighting(list(tasks)).to(device)
    trainer = Trainer.from_config(
        t, model, balancer, subset, seed=cfg.seed, device=device, primary=dict(primary), test_each_epoch=True
    )
    started = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - started
    records = {}
    for name in tasks:
        directions = subset.tasks[name].metric_directions()
        metric = primary[name]
        best = _best_epoch(result.epochs, name, metric, directions[metric])
        last = result.epochs[-1]
        assert best.test is not None and last.test is not None  # tested every epoch
        records[name] = {
            "status": "completed",
            "task": name,
            "primary": metric,
            "directions": directions,
            "metrics": {
                "best": {"epoch": best.epoch, "val": best.val[name], "test": best.test[name]},
                "last": {"epoch": last.epoch, "val": last.val[name], "test": last.test[name]},
            },
            "curves": {
                "epoch": [r.epoch for r in result.epochs],
                "loss": [r.train_loss[name] for r in result.epochs],
                "val": [r.val[name][metric] for r in result.epochs],
            },
            "trained_with": {"tasks": list(tasks), "layout": layout, "train_s": round(seconds, 3)},
            "parameters": task_network_size(model, name),
        }
    return records


def task_network_size(model: MultiTaskModel, task: str) -> int:
    """Parameters of task ``task``'s own single-task network within the K trained together (its
    head, its input adapter, and its slice of the grouped layers or its own encoder copy)."""
    counts = model.parameter_counts()
    return int(counts["per_task"][task] + counts["shared"] // len(model.task_names))


def resolve_baselines(
    cfg: DictConfig,
    data: MultiTaskDataset,
    tasks: Sequence[str],
    primary: Mapping[str, str],
    encoder: EncoderSpec,
    device: torch.device,
    cache: BaselineCache,
    policy: str,
    batched: str = "auto",
) -> tuple[dict[str, dict[str, Any]], dict[str, str], list[str]]:
    """Baselines for ``tasks``: cached ones reused, missing ones trained (unless ``only_cached``).

    Returns ``(records, keys, trained)``; a task without a baseline is absent from ``records``.
    """
    keys = baseline_keys(cfg, tasks, primary, encoder)
    records = {name: rec for name in tasks if (rec := cache.load(keys[name])) is not None}
    missing = [name for name in tasks if name not in records]
    if records:
        log.info("reusing cached single-task baselines for %s (%s)", ", ".join(records), cache.root)
    if missing and policy == "only_cached":
        log.info("no cached baseline for %s (report.baselines=only_cached)", ", ".join(missing))
        missing = []
    if not missing:
        return records, keys, missing
    with cache.locked(keys[name] for name in missing):  # a concurrent run training them: wait for it
        done = {name: rec for name in missing if (rec := cache.load(keys[name])) is not None}
        records.update(done)
        missing = [name for name in missing if name not in done]
        if done:
            log.info("another run trained the baselines of %s meanwhile; reusing them", ", ".join(done))
        if missing:
            log.info("training single-task baselines for %s together", ", ".join(missing))
            trained = train_baselines(cfg, data, missing, primary, encoder, device, mode=batched)
            for name, record in trained.items():
                record["key"] = keys[name]
                record["settings"] = baseline_settings(
                    plain(cfg.dataset), name, primary[name], encoder.as_dict(), plain(cfg.trainer), cfg.seed
                )
                cache.store(keys[name], record)
                records[name] = record
    return records, keys, missing


def baseline_keys(
    cfg: DictConfig, tasks: Sequence[str], primary: Mapping[str, str], encoder: EncoderSpec
) -> dict[str, str]:
    """The cache key of each task's single-task baseline under ``cfg``."""
    return {
        name: baseline_key(
            baseline_settings(plain(cfg.dataset), name, primary[name], encoder.as_dict(), plain(cfg.trainer), cfg.seed)
        )
        for name in tasks
    }


def check_cache(
    cfg: DictConfig, tasks: Sequence[str], primary: Mapping[str, str], encoder: EncoderSpec, cache: BaselineCache
) -> None:
    """Read the run's baseline cache files before training, so that a corrupt one is reported
    (:class:`~mtlrun.results.baseline_cache.CacheFileError`) before hours of training, not after."""
    for key in baseline_keys(cfg, tasks, primary, encoder).values():
        cache.load(key)

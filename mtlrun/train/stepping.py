"""A trainer built from a composed config for stepping outside :func:`mtlrun.train.run.run`, as the
benchmarks and the data-parallel tests step it: the run's own components and :class:`Trainer`,
one rank of the process group when this process has joined one (:mod:`mtlrun.train.distributed`)."""

from __future__ import annotations

from omegaconf import DictConfig

from mtlrun.train import distributed
from mtlrun.train.build import Components, build
from mtlrun.train.loop import Trainer


def stepping_trainer(cfg: DictConfig) -> tuple[Trainer, Components]:
    """``(trainer, components)`` of ``cfg``, in training mode; no run folder, no callbacks."""
    c = build(cfg)
    dp = distributed.current()
    if dp is not None:
        distributed.prepare_model(c.model, c.balancer)
    trainer = Trainer.from_config(
        cfg.trainer, c.model, c.balancer, c.data, seed=cfg.seed, device=c.device, primary=c.primary
    )
    if dp is not None:
        distributed.attach(dp, trainer, cfg.seed, cfg.trainer.data_parallel)
    trainer.model.train()
    return trainer, c

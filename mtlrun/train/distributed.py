"""Data-parallel training on ``torch.distributed``: one process per device, the same update as one
process with the whole batch (up to the order of floating-point sums).

One job each:

- process group: :func:`process_env` reads where this process sits (torchrun's ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ... or, under ``srun``, SLURM's), :func:`join`
  starts the group (``nccl`` on GPUs, ``gloo`` on CPU), :func:`leave` ends it;
  :func:`launch` starts ``trainer.devices`` processes through torch's elastic launcher
  (``torch.distributed.run``'s engine, :mod:`mtlrun.cli.ranks`) when ``mtlrun`` was not started by one;
- sharding: every rank draws the same seeded global batch and keeps its contiguous shard
  (:meth:`DataParallel.shard`), so the shards are disjoint and cover the batch;
- losses: :meth:`DataParallel.global_losses` hands the balancer the global mean of each task loss
  (one all-reduce of T+T numbers), whose gradient is the local loss's scaled by the rank's share of
  the labels, so that summing gradients over ranks gives the whole batch's gradient;
- gradients: :meth:`DataParallel.sum` all-reduces the task Jacobian for gradient methods
  (``balancers.base``), :meth:`DataParallel.gather` gathers representation gradients (``rep_grad``),
  :meth:`DataParallel.reduce_grads` all-reduces every other gradient in one flat buffer;
- randomness: the forward passes draw from a stream of their own per rank and step
  (:meth:`DataParallel.forward_rng`), so the global generator, which balancers draw from (pcgrad's
  order, rlw's weights), stays identical on every rank.

Only rank 0 writes the run folder (``train.run``).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.errors import ConfigError

log = logging.getLogger("mtlrun")

Batch = tuple[Tensor, dict[str, Tensor]]

#: how a gradient method's Jacobian is combined across ranks (``trainer.data_parallel``)
SYNC_MODES = ("exact", "average_weights")


@dataclass(frozen=True)
class ProcessEnv:
    """Where this process sits in a data-parallel job."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def process_env() -> ProcessEnv | None:
    """This process's place from torchrun's variables, or SLURM's under ``srun`` with several tasks;
    None for a single process."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        if world <= 1:
            return None
        return ProcessEnv(
            int(env["RANK"]), world, int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", world))
        )
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env and env.get("MTLRUN_SLURM_DDP") == "1":
        world = int(env["SLURM_NTASKS"])
        local_world = int(env.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0] or 1)
        return ProcessEnv(int(env["SLURM_PROCID"]), world, int(env.get("SLURM_LOCALID", 0)), local_world)
    return None


def is_follower() -> bool:
    """Whether this process is a rank other than 0 of a job started by torchrun or srun."""
    place = process_env()
    return place is not None and place.rank != 0


def _slurm_rendezvous() -> None:
    """MASTER_ADDR/MASTER_PORT from SLURM's node list where torchrun did not set them."""
    env = os.environ
    if "MASTER_ADDR" not in env:
        nodes = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if not nodes:
            raise ConfigError("a data-parallel run under srun needs MASTER_ADDR or SLURM_JOB_NODELIST")
        first = subprocess.run(
            ["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        env["MASTER_ADDR"] = first
    env.setdefault("MASTER_PORT", str(29500 + int(env.get("SLURM_JOB_ID", "0")) % 1000))
    place = process_env()
    assert place is not None
    env.setdefault("RANK", str(place.rank))
    env.setdefault("WORLD_SIZE", str(place.world_size))
    env.setdefault("LOCAL_RANK", str(place.local_rank))


class DataParallel:
    """The collectives of one data-parallel run, seen by the trainer and (as ``ctx.collective``) by
    the balancers. ``bytes_reduced`` counts what this rank sent to all-reduces and gathers."""

    def __init__(self, place: ProcessEnv, device: torch.device, mode: str = "exact") -> None:
        if mode not in SYNC_MODES:
            raise ConfigError(f"trainer.data_parallel={mode} is not valid; choose one of: {', '.join(SYNC_MODES)}")
        self.rank, self.world_size = place.rank, place.world_size
        self.local_rank, self.local_world_size = place.local_rank, place.local_world_size
        self.device = device
        self.backend = backend_for(device)
        #: average per-rank task weights instead of all-reducing the Jacobian (approximate)
        self.average_weights = mode == "average_weights"
        self.bytes_reduced = 0
        self.seed = 0
        self.fraction = 1.0  # this rank's share of the step batch's rows
        self.present: Tensor | None = None  # tasks with a label anywhere in the global batch
        self._synced: set[int] = set()
        self._draws = 0
        self._step = 0

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    # ---- sharding ----

    def bounds(self, n: int) -> tuple[int, int]:
        """This rank's contiguous rows of a global batch of ``n`` (sizes differ by at most one)."""
        base, extra = divmod(n, self.world_size)
        lo = self.rank * base + min(self.rank, extra)
        return lo, lo + base + (1 if self.rank < extra else 0)

    def shard(self, batch: Batch) -> Batch:
        x, targets = batch
        if not isinstance(x, Tensor):
            raise ConfigError("trainer.devices > 1 needs one common input per sample (not a multi-input dataset)")
        lo, hi = self.bounds(x.shape[0])
        return x[lo:hi], {t: y[lo:hi] for t, y in targets.items()}

    def shard_step(self, group: list[Batch], step: int) -> list[Batch]:
        """This rank's shards of a step's batches; :attr:`fraction` becomes its share of the first."""
        self._step, self._draws = step, 0
        n = len(group[0][0])
        lo, hi = self.bounds(n)
        self.fraction = (hi - lo) / max(n, 1)
        return [self.shard(b) for b in group]

    # ---- collectives ----

    def sum(self, tensor: Tensor) -> Tensor:
        """``tensor`` summed over the ranks (the same on every rank); the input is not changed."""
        import torch.distributed as dist

        out = tensor.detach().clone().contiguous()
        self.bytes_reduced += out.numel() * out.element_size()
        dist.all_reduce(out)
        return out

    def mean(self, tensor: Tensor) -> Tensor:
        return self.sum(tensor) / self.world_size

    def gather(self, tensor: Tensor) -> tuple[Tensor, slice]:
        """The ranks' ``tensor`` s concatenated along dim 1 in rank order (they may differ in that
        size), and the columns of this rank's own."""
        import torch.distributed as dist

        local = tensor.detach().contiguous()
        sizes = torch.zeros(self.world_size, dtype=torch.long, device=local.device)
        sizes[self.rank] = local.shape[1]
        sizes = self.sum(sizes)
        width = int(sizes.max())
        padded = torch.zeros(local.shape[0], width, dtype=local.dtype, device=local.device)
        padded[:, : local.shape[1]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        self.bytes_reduced += padded.numel() * padded.element_size()
        dist.all_gather(parts, padded)
        counts = sizes.tolist()
        start = sum(counts[: self.rank])
        return torch.cat([p[:, :c] for p, c in zip(parts, counts)], dim=1), slice(start, start + counts[self.rank])

    def mark_synced(self, params: Sequence[Tensor]) -> None:
        """``params``' ``.grad`` already holds the global gradient (a balancer wrote it from a
        reduced Jacobian): :meth:`reduce_grads` leaves them out."""
        self._synced.update(id(p) for p in params)

    def global_losses(self, losses: dict[str, Tensor], counts: Tensor) -> dict[str, Tensor]:
        """Each task's mean loss over the global batch; its gradient is the local loss's times this
        rank's share ``n_r / N`` of the task's labels, so gradients summed over ranks are the whole
        batch's. ``counts`` (T,) are the local label counts; also sets :attr:`present`."""
        names = list(losses)
        local = torch.stack([losses[t].detach().float() for t in names])
        counts = counts.to(local)
        totals = self.sum(torch.cat([torch.where(counts > 0, local * counts, torch.zeros_like(local)), counts]))
        T = len(names)
        sums, n = totals[:T], totals[T:]
        mean = torch.where(n > 0, sums / n.clamp(min=1), torch.zeros_like(sums))
        share = counts / n.clamp(min=1)
        self.present = n > 0
        out = {}
        for i, t in enumerate(names):
            value = losses[t]
            own = share[i].to(value.dtype) * (value - value.detach())  # 0 in value, the local gradient times n_r/N
            out[t] = mean[i].to(value.dtype) + torch.where(counts[i] > 0, own, torch.zeros_like(own))
        return out

    def reduce_grads(self, params: Sequence[nn.Parameter], local: dict[int, Tensor] | None = None) -> None:
        """All-reduce (sum) the gradients of ``params`` not marked synced, in one flat buffer.

        ``local`` holds gradients taken before the balancer ran (the model's extra losses); they are
        summed over ranks and added, also to synced parameters."""
        local = local or {}
        entries: list[tuple[nn.Parameter, Tensor, bool]] = []
        for p in params:
            synced = id(p) in self._synced
            own = local.get(id(p))
            g = None if synced else p.grad
            part = own if g is None else (g if own is None else g + own)
            if part is not None:
                entries.append((p, part, synced))
        self._synced.clear()
        if not entries:
            return
        flat = self.sum(torch.cat([part.reshape(-1) for _, part, _ in entries]))
        offset = 0
        for p, part, synced in entries:
            value = flat[offset : offset + part.numel()].view_as(part).to(part.dtype)
            offset += part.numel()
            p.grad = value if not synced or p.grad is None else p.grad + value

    def broadcast_module(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (they start equal from the seed; this makes sure)."""
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def largest(self, value: int) -> int:
        """The largest of the ranks' ``value`` s (a stop asked on any rank stops them all)."""
        import torch.distributed as dist

        out = torch.tensor([value], dtype=torch.long, device=self.device)
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
        return int(out.item())

    # ---- randomness ----

    @contextmanager
    def forward_rng(self) -> Iterator[None]:
        """The forward passes' randomness (dropout) from this rank's own stream for this step, so
        the global generator, which balancers draw from, advances identically on every rank."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            mixed = (self.seed * 0x9E3779B1 + self._step * 0x85EBCA77 + self.rank * 0xC2B2AE3D + self._draws) % 2**63
            self._draws += 1
            torch.manual_seed(mixed)
            yield


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch, on any backend (torch's ``SyncBatchNorm`` needs
    a GPU): the mean and the variance are sums all-reduced through
    ``torch.distributed.nn.functional.all_reduce``, whose backward all-reduces the gradients, so
    both the normalisation and its gradient are those of one process with the whole batch.
    Two all-reduces of C (+1) numbers per layer and forward, two more per backward."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        import torch.distributed as dist

        if not self.training or not (dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        local = torch.tensor([x.numel() // max(x.shape[1], 1)], dtype=x.dtype, device=x.device)
        totals = all_reduce(torch.cat([x.sum(dims), local]))
        count = totals[-1].detach()
        mean = totals[:-1] / count
        centered = x - mean.view(shape)
        var = all_reduce((centered * centered).sum(dims)) / count
        y = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var.detach() * count / (count - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y


class _AllReduce(torch.autograd.Function):
    """A differentiable sum over ranks: the gradient of a sum is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        import torch.distributed as dist

        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return _AllReduce.apply(grad)


def all_reduce(tensor: Tensor) -> Tensor:
    return _AllReduce.apply(tensor)


def global_batch_norm(module: nn.Module) -> int:
    """Replace every batch-norm layer of ``module`` by :class:`GlobalBatchNorm`, keeping its
    parameters and buffers (the same tensors); return how many were replaced."""
    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            new._parameters, new._buffers = child._parameters, child._buffers
            new.train(child.training)
            setattr(module, name, new)
            replaced += 1
        else:
            replaced += global_batch_norm(child)
    return replaced


def prepare_model(model: nn.Module, balancer: Any) -> None:
    """Batch norm over the global batch; a balancer with batch norm in the model then takes its
    Jacobian in a loop, as the norm's backward all-reduces (which a batched, vmap Jacobian cannot)."""
    if global_batch_norm(model) and getattr(balancer, "jacobian_mode", None) == "auto":
        balancer.jacobian_mode = "loop"


def attach(dp: Any, trainer: Any, seed: int, mode: str) -> None:
    """Make ``trainer`` (its step and its evaluation) one rank of ``dp``'s group: the balancers'
    generators seeded alike on every rank, the Jacobian all-reduced exactly or, with
    ``mode="average_weights"``, the per-rank weights averaged."""
    dp.seed = int(seed)
    dp.average_weights = mode == "average_weights"
    trainer.dp = dp
    trainer.evaluator.dp = dp


def check_balancer(balancer: nn.Module, name: str) -> None:
    """One line for a balancer whose update is not yet the single-process one across ranks."""
    if not getattr(balancer, "data_parallel_exact", True):
        from mtlrun.balancers import BALANCERS

        exact = sorted(n for n in BALANCERS.names() if getattr(BALANCERS.get(n), "data_parallel_exact", True))
        raise ConfigError(
            f"balancer={name} takes per-task gradients of its own and is not supported with trainer.devices > 1; "
            f"choose one of: {', '.join(exact)}"
        )


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def device_for(place: ProcessEnv, device: torch.device) -> torch.device:
    """This rank's device: its own GPU (``LOCAL_RANK``) on CUDA, the given device otherwise."""
    if device.type == "cuda":
        return torch.device("cuda", place.local_rank)
    return device


def join(device: torch.device, mode: str = "exact") -> DataParallel:
    """Start this process's group (from the environment) and return its collectives."""
    import torch.distributed as dist

    place = process_env()
    if place is None:
        raise RuntimeError("not a data-parallel process")
    if "MASTER_ADDR" not in os.environ or "RANK" not in os.environ:
        _slurm_rendezvous()
    device = device_for(place, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            backend_for(device), rank=place.rank, world_size=place.world_size, timeout=timedelta(minutes=10)
        )
    global _current
    _current = DataParallel(place, device, mode)
    _current.backend = backend_for(device)
    return _current


#: this process's collectives while it is a rank of a data-parallel run
_current: DataParallel | None = None


def current() -> DataParallel | None:
    """The collectives of the data-parallel run this process belongs to, or None."""
    return _current


def leave() -> None:
    """End this process's group (each rank at the end of its run, whatever the outcome)."""
    import torch.distributed as dist

    global _current
    _current = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share_folder(folder: Path) -> Path:
    """Rank 0's run folder, on every rank (a rank started by torchrun composed a folder of its own)."""
    import torch.distributed as dist

    box: list[Any] = [str(folder)]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def check_world(devices: int, nodes: int) -> None:
    """``trainer.devices`` x ``trainer.nodes`` against the processes actually started."""
    place = process_env()
    if place is not None and devices * nodes not in (1, place.world_size):
        raise ConfigError(
            f"trainer.devices={devices} x trainer.nodes={nodes} does not match the {place.world_size} processes "
            "started (WORLD_SIZE); give the same number or leave trainer.devices=1"
        )


def wants_launch(devices: int, nodes: int) -> bool:
    """Whether this process must start the ranks itself (``trainer.devices > 1`` outside torchrun/srun)."""
    if process_env() is not None:
        return False
    if nodes > 1:
        raise ConfigError(
            f"trainer.nodes={nodes} needs one mtlrun per device on every node: start it with "
            "srun (MTLRUN_SLURM_DDP=1, --ntasks-per-node=trainer.devices) or torchrun --nnodes"
        )
    return devices > 1

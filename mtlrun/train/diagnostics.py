"""Training diagnostics: gradient conflict and inter-task affinity, sampled every N steps.

On a sampled step (``step % every == 0``) the trainer hands over the task Jacobian J (T x P) on
the shared parameters, taken from the balancer when it computed one (``BalanceInfo.jacobian``)
and otherwise computed here before the balancer's backward frees the graph. From J come

- the pairwise cosine similarity of task gradients, ``cos_ij = <g_i, g_j> / (|g_i| |g_j|)``
  (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020, call ``cos < 0``
  conflicting gradients);
- the per-task gradient norms ``|g_i|`` and their ratios;
- the inter-task affinity of Fifty et al., "Efficiently Identifying Task Groupings for
  Multi-Task Learning" (TAG), NeurIPS 2021, Eq. 3 (``mtlrun.train.diagnostics.affinity``):
  ``Z(i -> j) = 1 - L_j(theta_s', theta_j) / L_j(theta_s, theta_j)`` where ``theta_s'`` is the
  shared parameters after one step of the run's own optimizer on task i's gradient alone, with
  the optimizer's current state, and task-specific parameters stay unchanged; both losses are
  measured on the step's batch.

Everything is computed before the real optimizer step, without touching the optimizer's state,
the model's buffers (batch-norm statistics are updated on copies) or the global random number
generators, so the training trajectory is the same with diagnostics on or off. Results stay on
the device until :meth:`Diagnostics.result` reads them once (at each epoch end).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.balancers.base import Balancer, Batch, StepContext
from mtlrun.balancers.jacobian import flat, task_jacobian
from mtlrun.balancers.optim_rules import PREVIEWABLE, preview_step
from mtlrun.data.batch import batch_losses
from mtlrun.results.atomic import write_json

log = logging.getLogger("mtlrun")

LossFn = Callable[[Tensor, Tensor], Tensor]


def pair_key(a: str, b: str) -> str:
    return f"{a}|{b}"


def task_pairs(tasks: Sequence[str]) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(tasks)) for j in range(i + 1, len(tasks))]


# --------------------------------------------------------------------------------------------
# Gradient statistics
# --------------------------------------------------------------------------------------------


def gradient_cosines(jacobian: Tensor) -> tuple[Tensor, Tensor]:
    """The cosine matrix (T, T) of the rows of ``jacobian`` and the row norms (T,).

    A zero gradient has no direction; its cosines with other tasks are reported as 0.
    """
    j = jacobian.detach().double()
    gram = j @ j.T
    norms = gram.diagonal().clamp_min(0).sqrt()
    cos = gram / (norms[:, None] * norms[None, :]).clamp_min(torch.finfo(torch.float64).tiny)
    cos = cos.clamp(-1.0, 1.0)
    cos.fill_diagonal_(1.0)
    return cos, norms


# --------------------------------------------------------------------------------------------
# Optimizer lookahead
# --------------------------------------------------------------------------------------------


def lookahead(optimizer: torch.optim.Optimizer, params: Sequence[Tensor], grads: Sequence[Tensor]) -> list[Tensor]:
    """The parameters one ``optimizer.step()`` would produce from each candidate gradient.

    ``grads[k]`` has shape (K, *params[k].shape): K candidate gradients (one per task). Returns,
    per parameter, (K, *shape) updated values, by the optimiser's own update rule
    (``mtlrun.balancers.optim_rules``, shared with the lookahead balancers). Never writes the optimizer's state.
    """
    return [preview_step(optimizer, p, g) for p, g in zip(params, grads)]


# --------------------------------------------------------------------------------------------
# The collector the trainer holds
# --------------------------------------------------------------------------------------------


def has_active_dropout(model: nn.Module) -> bool:
    """Whether a forward of ``model`` draws random masks (dropout layers in training mode)."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0 for m in model.modules())


class Diagnostics:
    """Collects gradient cosines, gradient norms and TAG affinities on every ``every``-th step.

    The trainer calls, on sampled steps only (``wants(step)``): :meth:`jacobian_unless_provided`
    after the forward and before the balancer's backward, then :meth:`observe` after the
    balancer's backward and before the optimizer step.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        model: nn.Module,
        shared: Sequence[nn.Parameter],
        loss_fns: Mapping[str, LossFn],
        optimizer: torch.optim.Optimizer,
        *,
        every: int,
        affinity: bool = True,
        path: Path | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"diagnostics.every={every} must be >= 1 to collect anything")
        self.tasks = list(tasks)
        self.model = model
        self.shared = [p for p in shared if p.requires_grad]
        if not self.shared:
            raise ValueError("no shared parameters: gradient diagnostics need parameters shared by the tasks")
        self.loss_fns = dict(loss_fns)
        self.optimizer = optimizer
        self.every = every
        self.path = path
        self.use_shared(self.shared)
        self.affinity_reason: str | None = None
        if not affinity:
            self.affinity_reason = "diagnostics.affinity=false"
        else:
            if not isinstance(optimizer, PREVIEWABLE):
                self.affinity_reason = f"no lookahead rule for optimizer {type(optimizer).__name__}"
        self.affinity = self.affinity_reason is None
        #: per sampled step: (epoch, cosine (T,T), norms (T,), affinity (T,T) or None), on the device
        self._pending: list[tuple[int, Tensor, Tensor, Tensor | None]] = []
        self._epochs: list[int] = []
        self._cos: list[Tensor] = []
        self._norms: list[Tensor] = []
        self._aff: list[Tensor] = []
        self._aff_epochs: list[int] = []
        self.skipped = 0
        self.overhead_s = 0.0

    def use_shared(self, shared: Sequence[nn.Parameter]) -> None:
        """The shared parameters the Jacobian is taken on (a model may change them between epochs)."""
        self.shared = [p for p in shared if p.requires_grad]
        names = {id(p): n for n, p in self.model.named_parameters()}
        self.shared_names = [names[id(p)] for p in self.shared]

    def wants(self, step: int) -> bool:
        return step % self.every == 0

    # ---- hooks --------------------------------------------------------------------------

    def jacobian_unless_provided(
        self,
        losses: Mapping[str, Tensor],
        ctx: StepContext,
        balancer: Balancer,
        multipliers: Mapping[str, float] | None = None,
    ) -> Tensor | None:
        """J (T, P) of the task losses on the shared parameters, or None when the balancer will
        return it itself.

        ``multipliers`` are the task schedule's loss multipliers, when the balancer sees scaled
        losses: its Jacobian then has scaled rows, so the unscaled one is computed here. Uses
        ``retain_graph`` so that the balancer's own backward still works. With a split
        forward (``ctx.representation_input`` set) the losses reach the encoder only through the
        representation, so J = dL/dshared (direct) + (dL/drep) (drep/dshared).
        """
        scaled = multipliers is not None and any(float(m) != 1.0 for m in multipliers.values())
        if not scaled and balancer.returns_jacobian(ctx.step):
            return None
        started = self._clock()
        task_losses = [losses[t] for t in self.tasks]
        rep, rep_in = ctx.representation, ctx.representation_input
        if rep is None or rep_in is None:
            jac = task_jacobian(task_losses, self.shared, retain_graph=True)
        else:
            full = task_jacobian(task_losses, [*self.shared, rep_in], retain_graph=True)
            p = sum(x.numel() for x in self.shared)
            direct, through_rep = full[:, :p], full[:, p:]
            rows = []
            for i in range(len(self.tasks)):
                grads = torch.autograd.grad(
                    rep, self.shared, grad_outputs=through_rep[i].view_as(rep), retain_graph=True, allow_unused=True
                )
                rows.append(flat(grads, self.shared))
            jac = direct + torch.stack(rows)
        self.overhead_s += self._clock() - started
        return jac

    def observe(
        self, step: int, epoch: int, batch: Batch, jacobian: Tensor | None, losses: Mapping[str, Tensor] | None = None
    ) -> None:
        """Record one sampled step from its Jacobian (T, P), its batch and its task losses.

        ``losses`` (the step's own, on ``batch``) serve as ``L_j(theta)`` of the affinity when
        the model is deterministic; otherwise that baseline is recomputed with the lookahead's
        random masks.
        """
        started = self._clock()
        if jacobian is None:
            self.skipped += 1
            if self.skipped == 1:
                log.warning("diagnostics: no task Jacobian at step %d; such steps are skipped", step)
            return
        cos, norms = gradient_cosines(jacobian)
        aff = None
        if self.affinity:
            before = None
            if losses is not None and not has_active_dropout(self.model):
                before = torch.stack([losses[t].detach() for t in self.tasks])
            aff = self.affinity_matrix(jacobian, batch, seed=step, before=before)
        self._pending.append((epoch, cos, norms, aff))
        self.overhead_s += self._clock() - started

    # ---- affinity -----------------------------------------------------------------------

    def task_losses(self, batch: Batch, overrides: Mapping[str, Tensor]) -> Tensor:
        """The task losses (T,) of the model with ``overrides`` in place of its tensors."""
        losses = batch_losses(self.model, {t: self.loss_fns[t] for t in self.tasks}, batch, overrides)
        return torch.stack([losses[t].detach() for t in self.tasks])

    def affinity_matrix(self, jacobian: Tensor, batch: Batch, seed: int = 0, before: Tensor | None = None) -> Tensor:
        """Z (T, T), ``Z[i, j] = 1 - L_j(after a step on task i) / L_j(now)`` on ``batch``.

        ``before`` are the current losses L_j(theta) (T,) when already known. Batch-norm buffers
        are replaced by copies and the random generators are forked and re-seeded identically
        before each forward (same dropout masks), so the only difference between the forwards is
        the shared parameters.
        """
        T = len(self.tasks)
        grads, offset = [], 0
        for p in self.shared:
            n = p.numel()
            grads.append(jacobian[:, offset : offset + n].reshape(T, *p.shape).to(p.dtype))
            offset += n
        updated = lookahead(self.optimizer, self.shared, grads)
        buffers = {name: b.detach().clone() for name, b in self.model.named_buffers()}
        device = jacobian.device
        devices = (
            [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        )
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            if before is None:
                torch.manual_seed(seed)
                before = self.task_losses(batch, buffers)
            after = []
            for i in range(T):
                torch.manual_seed(seed)
                # own storage per tensor: slices of the stacked update can hit slower kernels
                params = {name: new[i].clone() for name, new in zip(self.shared_names, updated)}
                after.append(self.task_losses(batch, {**buffers, **params}))
        after_t = torch.stack(after).double()
        return 1.0 - after_t / before.double().clamp_min(torch.finfo(torch.float64).tiny)

    # ---- results ------------------------------------------------------------------------

    def _clock(self) -> float:
        if self.shared[0].device.type == "cuda":
            torch.cuda.synchronize(self.shared[0].device)
        return time.perf_counter()

    def _collect(self) -> None:
        """Move pending per-step results to the host (one transfer, at epoch ends)."""
        if not self._pending:
            return
        epochs = [e for e, *_ in self._pending]
        cos = torch.stack([c for _, c, _, _ in self._pending]).cpu()
        norms = torch.stack([n for _, _, n, _ in self._pending]).cpu()
        self._epochs += epochs
        self._cos += list(cos)
        self._norms += list(norms)
        affs = [(e, a) for e, _, _, a in self._pending if a is not None]
        if affs:
            self._aff += list(torch.stack([a for _, a in affs]).cpu())
            self._aff_epochs += [e for e, _ in affs]
        self._pending.clear()

    @property
    def steps_sampled(self) -> int:
        return len(self._epochs) + len(self._pending)

    def result(self) -> dict[str, Any]:
        """The ``diagnostics.json`` content (see the module docstring for the definitions)."""
        self._collect()
        out: dict[str, Any] = {
            "tasks": self.tasks,
            "every": self.every,
            "steps_sampled": len(self._epochs),
            "cosine": None,
            "grad_norm": None,
            "affinity": None,
            "overhead_s": round(self.overhead_s, 4),
        }
        if self.skipped:
            out["steps_skipped"] = self.skipped
        if not self._cos:
            out["reason"] = "no step sampled yet"
            return out
        cos, norms = torch.stack(self._cos), torch.stack(self._norms)
        pairs = task_pairs(self.tasks)
        out["cosine"] = {
            "matrix": _matrix(cos.mean(0)),
            "pairs": {
                pair_key(self.tasks[i], self.tasks[j]): {
                    "mean": _num(cos[:, i, j].mean()),
                    "std": _num(cos[:, i, j].std(unbiased=False)),
                    "frac_negative": _num((cos[:, i, j] < 0).double().mean()),
                }
                for i, j in pairs
            },
            "by_epoch": _by_epoch(self._epochs, cos),
        }
        ratio = norms / norms.mean(1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        tiny = torch.finfo(torch.float64).tiny
        out["grad_norm"] = {
            "mean": {t: _num(norms[:, k].mean()) for k, t in enumerate(self.tasks)},
            "ratio_to_mean": {t: _num(ratio[:, k].mean()) for k, t in enumerate(self.tasks)},
            "pair_ratio": {
                pair_key(self.tasks[i], self.tasks[j]): _num(
                    (
                        torch.maximum(norms[:, i], norms[:, j])
                        / torch.minimum(norms[:, i], norms[:, j]).clamp_min(tiny)
                    ).mean()
                )
                for i, j in pairs
            },
        }
        if self._aff:
            aff = torch.stack(self._aff)
            out["affinity"] = {"matrix": _matrix(aff.mean(0)), "by_epoch": _by_epoch(self._aff_epochs, aff)}
        elif self.affinity_reason:
            out["affinity_reason"] = self.affinity_reason
        return out

    def state_dict(self) -> dict[str, Any]:
        """The samples gathered so far (a resumed run continues them)."""
        self._collect()
        return {
            "epochs": list(self._epochs),
            "cos": torch.stack(self._cos) if self._cos else None,
            "norms": torch.stack(self._norms) if self._norms else None,
            "aff": torch.stack(self._aff) if self._aff else None,
            "aff_epochs": list(self._aff_epochs),
            "skipped": self.skipped,
            "overhead_s": self.overhead_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending.clear()
        self._epochs = [int(e) for e in state["epochs"]]
        self._cos = list(state["cos"]) if state["cos"] is not None else []
        self._norms = list(state["norms"]) if state["norms"] is not None else []
        self._aff = list(state["aff"]) if state["aff"] is not None else []
        self._aff_epochs = [int(e) for e in state["aff_epochs"]]
        self.skipped, self.overhead_s = int(state["skipped"]), float(state["overhead_s"])

    def write(self, path: Path | None = None) -> None:
        """Write :meth:`result` atomically to ``path`` (default: the path given at construction)."""
        target = path or self.path
        if target is None:
            raise ValueError("Diagnostics.write needs a path")
        write_json(target, self.result())


def _num(x: Tensor) -> float:
    return round(float(x), 6)


def _matrix(m: Tensor) -> list[list[float]]:
    return [[round(float(v), 6) for v in row] for row in m]


def _by_epoch(epochs: list[int], values: Tensor) -> list[dict[str, Any]]:
    index = torch.tensor(epochs)
    return [{"epoch": e, "matrix": _matrix(values[index == e].mean(0))} for e in sorted(set(epochs))]


def no_diagnostics(tasks: Sequence[str], every: int, reason: str) -> dict[str, Any]:
    """The ``diagnostics.json`` of a run that cannot have diagnostics, saying why."""
    return {
        "tasks": list(tasks),
        "every": every,
        "steps_sampled": 0,
        "cosine": None,
        "grad_norm": None,
        "affinity": None,
        "overhead_s": 0.0,
        "reason": reason,
    }


def diagnostics_for_run(
    conf: Mapping[str, Any] | None,
    *,
    tasks: Sequence[str],
    model: nn.Module,
    shared: Sequence[nn.Parameter],
    loss_fns: Mapping[str, LossFn],
    optimizer: torch.optim.Optimizer,
    path: Path,
    arch: str,
) -> Diagnostics | None:
    """The run's collector from its ``diagnostics`` config, or None when off.

    An architecture without shared parameters gets a ``diagnostics.json`` that says why.
    """
    if conf is None or int(conf["every"]) <= 0:
        return None
    every = int(conf["every"])
    if not [p for p in shared if p.requires_grad]:
        write_json(path, no_diagnostics(tasks, every, f"arch={arch} has no shared parameters"))
        return None
    return Diagnostics(
        tasks,
        model,
        shared,
        loss_fns,
        optimizer,
        every=every,
        affinity=bool(conf.get("affinity", True)),
        path=path,
    )

"""Learning to branch (Guo, Lee & Ulbricht, ICML 2020): a tree over the encoder's stages found by
training, then trained as that tree.

The design space (the paper's tree-structured topology) is a layered graph: the encoder's stage s
has ``widths[s]`` nodes, each a copy of the stage; the single node of stage 0 is the stem every
task shares, and the run's T task heads are the leaves. Every child (a node of stage s >= 1, or a
head) has one parent among the nodes of the layer before it, chosen with learnable branching
logits ``alpha_j`` (one per candidate parent; the branching probabilities are ``softmax(alpha_j)``).

Search (epochs 1..``search_epochs``, the paper's branching operation): the choice is relaxed with a
Gumbel-softmax sample (Jang et al., 2017; Maddison et al., 2017), drawn once per forward pass,

    d_ji = exp((alpha_ji + g_i) / tau) / sum_k exp((alpha_jk + g_k) / tau),   g_i ~ Gumbel(0, 1),

and the child reads the mixture ``x_j = sum_i d_ji y_i`` of its candidate parents' outputs ``y_i``
(the paper samples with ``log theta``, theta the branching probabilities; with ``log theta = log
softmax(alpha)`` the sample is the same), so weights and logits are trained jointly by the task
losses, with the run's optimizer and learning rate. The temperature is annealed per epoch,
``tau_e = temperature * temperature_decay^(e - 1)``. Evaluation during the search uses the most
probable parents (no noise).

Fixing (the paper's final architecture): at the start of epoch ``search_epochs + 1`` every child
keeps its most probable parent, ``argmax_i alpha_ji``; the network is from then on exactly that
discrete tree, fine-tuned from the searched weights: a node serving several tasks is shared, one
serving a single task belongs to it, and the nodes no task passes through, like the logits, are
frozen (``requires_grad`` off), get no gradient and are listed in neither ``shared_parameters()``
nor ``task_parameters()``. The phase and the parents are buffers, so a checkpoint taken on either
side of the switch resumes it exactly; the trainer calls :meth:`on_epoch_start` before every epoch
and takes the partition afresh. The found tree goes to the run folder as ``tree.json`` with the
equivalent ``arch=branched 'arch.branch_at={...}'`` (every tree over the stages is one: see
:func:`branch_points`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.errors import ConfigError
from mtlrun.models.arch.branched import GROUP_SEPARATOR
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.encoders import EncoderSpec
from mtlrun.registry import positive

log = logging.getLogger("mtlrun")

#: the found tree, in the run folder
TREE_FILE = "tree.json"

Partition = list[tuple[str, ...]]


def default_widths(num_stages: int, num_tasks: int) -> list[int]:
    """Nodes per stage, doubling from the stem: ``min(2^s, T)`` (the paper's 1, 2, 4, ... design)."""
    return [min(2**s, num_tasks) for s in range(num_stages)]


def branch_points(partitions: Sequence[Partition]) -> dict[str, int]:
    """``arch.branch_at`` of ``arch=branched`` that gives these refining partitions of the tasks per stage.

    A group that is not a group of the stage before (the first stage's "before" is all tasks) starts
    a branch there; ``branched`` separates two tasks at stage s exactly when such a point at s' <= s
    holds one and not the other, which is when their groups differ at s. Without any split, the
    group of all tasks at stage 0 (a branch point that separates nothing) keeps every stage shared.
    """
    points: dict[str, int] = {}
    previous = {tuple(t for g in partitions[0] for t in g)} if partitions else set()
    everyone = next(iter(previous)) if previous else ()
    for s, groups in enumerate(partitions):
        for group in groups:
            if group not in previous:
                points[GROUP_SEPARATOR.join(group)] = s
        previous = set(groups)
    return points or {GROUP_SEPARATOR.join(everyone): 0}


def branched_command(points: dict[str, int]) -> str:
    """The command-line overrides that train the tree as ``arch=branched``."""
    inner = ", ".join(f"{group}: {stage}" for group, stage in points.items())
    return f"arch=branched 'arch.branch_at={{{inner}}}'"


@ARCHS.register("learn_to_branch")
class LearnToBranch(MultiTaskModel):
    """A tree of stage copies whose branching is learned with Gumbel-softmax parent choices, then fixed."""

    def __init__(
        self,
        encoder: EncoderSpec,
        tasks: list[TaskSpec],
        search_epochs: int = 2,
        widths: list[int] | None = None,
        temperature: float = 1.0,
        temperature_decay: float = 0.9,
    ) -> None:
        super().__init__(encoder, tasks)
        probe = encoder.build()
        num_stages, num_tasks = len(probe.stages), len(self.task_names)
        widths = default_widths(num_stages, num_tasks) if widths is None else [w for w in widths]
        if len(widths) != num_stages:
            raise ConfigError(
                f"arch.widths={widths} must give one width per encoder stage (this encoder has {num_stages})"
            )
        for s, w in enumerate(widths):
            if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= num_tasks:
                raise ConfigError(
                    f"arch.widths[{s}]={w!r} must be an integer in [1, {num_tasks}] (the number of tasks)"
                )
        if widths[0] != 1:
            raise ConfigError(f"arch.widths[0]={widths[0]} must be 1: the stem is the root every task shares")
        if isinstance(search_epochs, bool) or not isinstance(search_epochs, int) or search_epochs < 1:
            raise ConfigError(f"arch.search_epochs={search_epochs!r} must be an integer >= 1")
        positive("arch", temperature=temperature, temperature_decay=temperature_decay)
        if temperature_decay > 1:
            raise ConfigError(f"arch.temperature_decay={temperature_decay} must be in (0, 1] (an annealing factor)")
        self.widths, self.search_epochs = widths, search_epochs
        self.temperature, self.temperature_decay = temperature, temperature_decay
        self.nodes = nn.ModuleList(
            nn.ModuleList(encoder.build().stages[s] for _ in range(width)) for s, width in enumerate(widths)
        )
        self.heads = build_heads(tasks, probe)
        # branching logits of the children with a choice (a single candidate parent needs none)
        self.stage_logits = nn.ParameterDict(
            {
                str(s): nn.Parameter(torch.zeros(widths[s], widths[s - 1]))
                for s in range(1, num_stages)
                if widths[s - 1] > 1
            }
        )
        last = widths[-1]
        self.head_logits = nn.ParameterDict(
            {t: nn.Parameter(torch.zeros(last)) for t in self.task_names} if last > 1 else {}
        )
        self.register_buffer("fixed", torch.zeros((), dtype=torch.bool))
        self.register_buffer("epoch", torch.ones((), dtype=torch.long))
        for s in range(1, num_stages):
            self.register_buffer(f"parents_{s}", torch.zeros(widths[s], dtype=torch.long))
        self.register_buffer("head_parents", torch.zeros(num_tasks, dtype=torch.long))
        self._frozen: set[int] = set()
        self.register_load_state_dict_post_hook(LearnToBranch._after_load)
        self._apply_phase()

    # ---- the tree -------------------------------------------------------------------------

    @property
    def searching(self) -> bool:
        return not bool(self.fixed)

    def tau(self) -> float:
        """This epoch's Gumbel-softmax temperature."""
        return self.temperature * self.temperature_decay ** (int(self.epoch) - 1)

    def _logits(self, s: int) -> Tensor | None:
        """Stage s's (children, parents) branching logits; ``s = len(widths)`` stands for the heads."""
        if s == len(self.widths):
            return torch.stack([self.head_logits[t] for t in self.task_names]) if len(self.head_logits) else None
        return self.stage_logits[str(s)] if str(s) in self.stage_logits else None

    def most_probable_parents(self) -> list[list[int]]:
        """Per layer 1..S (S: the heads), each child's most probable parent."""
        layers = []
        for s in range(1, len(self.widths) + 1):
            logits = self._logits(s)
            children = len(self.task_names) if s == len(self.widths) else self.widths[s]
            layers.append([0] * children if logits is None else logits.detach().argmax(dim=1).tolist())
        return layers

    def parents(self) -> list[list[int]]:
        """Per layer 1..S (S: the heads), each child's parent: the fixed tree, else the most probable."""
        if self.searching:
            return self.most_probable_parents()
        stages = [getattr(self, f"parents_{s}").tolist() for s in range(1, len(self.widths))]
        return [*stages, self.head_parents.tolist()]

    def serves(self, parents: list[list[int]] | None = None) -> list[list[tuple[str, ...]]]:
        """The tasks that pass through each node, stage by stage, in the tree of ``parents``
        (default :meth:`parents`), following the heads' parents down."""
        parents = self.parents() if parents is None else parents
        serves: list[list[list[str]]] = [[[] for _ in range(w)] for w in self.widths]
        for i, task in enumerate(self.task_names):
            node = parents[-1][i]
            for s in range(len(self.widths) - 1, -1, -1):
                serves[s][node].append(task)
                if s:
                    node = parents[s - 1][node]
        return [[tuple(ts) for ts in stage] for stage in serves]

    def partitions(self) -> list[Partition]:
        """Per stage, the groups of tasks sharing a node (task order inside, first task's order across)."""
        return [sorted((g for g in stage if g), key=lambda g: self.task_names.index(g[0])) for stage in self.serves()]

    def _apply_phase(self) -> None:
        """Derive what the buffers decide: who serves whom, and which parameters are frozen."""
        frozen: list[nn.Parameter] = []
        if not self.searching:
            frozen += [*self.stage_logits.values(), *self.head_logits.values()]
            for s, stage in enumerate(self.serves()):
                frozen += [p for j, ts in enumerate(stage) if not ts for p in self.nodes[s][j].parameters()]
        self._frozen = {id(p) for p in frozen}
        for p in self.parameters():
            p.requires_grad_(id(p) not in self._frozen)

    @staticmethod
    def _after_load(module: nn.Module, incompatible: Any) -> None:
        """A loaded checkpoint's buffers decide the phase and the tree."""
        if isinstance(module, LearnToBranch):
            module._apply_phase()

    def fix_tree(self) -> None:
        """End the search: every child keeps its most probable parent from now on."""
        chosen = self.most_probable_parents()
        with torch.no_grad():
            for s in range(1, len(self.widths)):
                getattr(self, f"parents_{s}").copy_(torch.tensor(chosen[s - 1]))
            self.head_parents.copy_(torch.tensor(chosen[-1]))
            self.fixed.fill_(True)
        self._apply_phase()
        points = branch_points(self.partitions())
        log.info(
            "learn_to_branch: tree fixed after %d search epochs, groups per stage %s; the same tree as "
            "arch=branched: %s",
            self.search_epochs,
            " | ".join(",".join(GROUP_SEPARATOR.join(g) for g in groups) for groups in self.partitions()),
            branched_command(points),
        )

    def on_epoch_start(self, epoch: int) -> None:
        with torch.no_grad():
            self.epoch.fill_(epoch)
        if self.searching and epoch > self.search_epochs:
            self.fix_tree()

    def check_epochs(self, epochs: int) -> None:
        if self.search_epochs >= epochs:
            raise ConfigError(
                f"arch.search_epochs={self.search_epochs} must be < trainer.epochs={epochs}: "
                "the found tree is trained after the search"
            )

    def tree(self) -> dict[str, Any]:
        """The found tree, as written to ``tree.json``."""
        partitions = self.partitions()
        points = branch_points(partitions)
        probabilities = []
        for s in range(1, len(self.widths) + 1):
            logits = self._logits(s)
            probabilities.append(None if logits is None else torch.softmax(logits.detach(), dim=1).tolist())
        parents = self.parents()
        return {
            "arch": "learn_to_branch",
            "fixed": not self.searching,
            "search_epochs": self.search_epochs,
            "tasks": list(self.task_names),
            "widths": list(self.widths),
            "parents": parents[:-1],
            "head_parents": dict(zip(self.task_names, parents[-1])),
            "probabilities": probabilities,
            "partitions": [[list(g) for g in groups] for groups in partitions],
            "branch_at": points,
            "command": branched_command(points),
        }

    def run_files(self) -> dict[str, str]:
        if self.searching:
            return {}
        return {TREE_FILE: json.dumps(self.tree(), indent=2) + "\n"}

    # ---- forward --------------------------------------------------------------------------

    def _mix(self, s: int, features: list[Tensor], tau: float) -> list[Tensor]:
        """Children inputs of layer s during the search: Gumbel-softmax mixtures of the parents' outputs."""
        logits = self._logits(s)
        children = len(self.task_names) if s == len(self.widths) else self.widths[s]
        if logits is None:
            return [features[0]] * children
        d = F.gumbel_softmax(logits, tau=tau, dim=-1)  # (children, parents)
        stacked = torch.stack(features)  # (parents, N, ...)
        mixed = torch.tensordot(d.to(stacked.dtype), stacked, dims=1)
        return list(mixed.unbind(0))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.searching and self.training:
            tau = self.tau()
            features = [node(x) for node in self.nodes[0]]
            for s in range(1, len(self.widths)):
                inputs = self._mix(s, features, tau)
                features = [node(inputs[j]) for j, node in enumerate(self.nodes[s])]
            inputs = self._mix(len(self.widths), features, tau)
            return {t: self.heads[t](inputs[i]) for i, t in enumerate(self.task_names)}
        parents = self.parents()
        serves = self.serves(parents)
        outputs: dict[int, Tensor] = {0: self.nodes[0][0](x)}
        for s in range(1, len(self.widths)):
            outputs = {j: self.nodes[s][j](outputs[parents[s - 1][j]]) for j, ts in enumerate(serves[s]) if ts}
        return {t: self.heads[t](outputs[parents[-1][i]]) for i, t in enumerate(self.task_names)}

    # ---- what is shared -------------------------------------------------------------------

    def task_modules(self, task: str) -> list[nn.Module]:
        if self.searching:  # any node may serve any task
            return [self.heads[task]]
        serves = self.serves()
        own = [self.nodes[s][j] for s, stage in enumerate(serves) for j, ts in enumerate(stage) if ts == (task,)]
        return [*own, self.heads[task]]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        own = super().task_parameters(task)
        if self.searching and task in self.head_logits:
            own.append(self.head_logits[task])  # head t's choice changes only task t's output
        return own

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for p in super().shared_parameters() if id(p) not in self._frozen]

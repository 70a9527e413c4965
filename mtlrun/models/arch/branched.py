"""Branched multi-task networks from a given tree (Vandenhende et al., BMVC 2020)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.errors import ConfigError
from mtlrun.models.base import ARCHS, MultiTaskModel, build_heads
from mtlrun.models.encoders import EncoderSpec

#: joins the tasks of a group in ``arch.branch_at`` keys and in module names, e.g. ``left+right``
GROUP_SEPARATOR = "+"

Group = tuple[str, ...]


def parse_branch_points(
    branch_at: Mapping[str, int], tasks: Sequence[str], num_stages: int
) -> list[tuple[frozenset[str], int]]:
    """Validate ``arch.branch_at`` (``{"a+b": stage}``); return (task set, non-negative stage) pairs."""
    points = []
    for key, stage in branch_at.items():
        names = str(key).split(GROUP_SEPARATOR)
        for name in names:
            if name not in tasks:
                choices = ", ".join(tasks)
                raise ConfigError(
                    f"arch.branch_at: '{name}' in group '{key}' is not a task of this run; choose from: {choices}"
                )
        if len(set(names)) != len(names):
            raise ConfigError(f"arch.branch_at: group '{key}' names a task twice")
        if isinstance(stage, bool) or not isinstance(stage, int) or not -num_stages <= stage < num_stages:
            raise ConfigError(
                f"arch.branch_at.{key}={stage!r} must be a stage index in [{-num_stages}, {num_stages - 1}] "
                f"(this encoder has {num_stages} stages; negative indices count from the last)"
            )
        points.append((frozenset(names), stage % num_stages))
    return points


def stage_partitions(
    points: list[tuple[frozenset[str], int]], tasks: Sequence[str], num_stages: int
) -> list[list[Group]]:
    """The groups of tasks that share each stage.

    Two tasks share stage s unless some branch point (G, s') with s' <= s has one of them in G and
    the other not; the partitions therefore refine from stage to stage, which makes a tree.
    """
    partitions = []
    for s in range(num_stages):
        active = [group for group, at in points if at <= s]
        groups: dict[tuple[bool, ...], list[str]] = {}
        for t in tasks:
            groups.setdefault(tuple(t in g for g in active), []).append(t)
        partitions.append([tuple(g) for g in groups.values()])
    return partitions


@ARCHS.register("branched")
class Branched(MultiTaskModel):
    """Tasks share the first stages of the encoder, then groups of tasks branch off with their own copies.

    ``branch_at`` maps a group of tasks (``"a+b"``) to the stage at which the group splits off from
    the others (Vandenhende et al., BMVC 2020, take such a tree as the result of their task-affinity
    search; here it is given; ``arch=learn_to_branch`` learns one end to end, Guo et al., ICML 2020, and writes
    it as ``branch_at`` in its run folder's ``tree.json``).
    From that stage on, the group's tasks share a branch of their own, which later entries may
    split further. Stage indices may be negative (``-1`` = the last stage). With ``branch_at`` null
    (or empty) every task branches at the last stage. A branch serving one task belongs to it; a
    branch serving several is shared. When the trunk ends in single-task branches (or no split
    happens), the trunk output is the shared representation (``encode``/``decode``).
    """

    supports_multi_input = True

    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec], branch_at: dict[str, int] | None = None) -> None:
        super().__init__(encoder, tasks)
        probe = encoder.build()
        num_stages = len(probe.stages)
        if branch_at is None or len(branch_at) == 0:
            branch_at = {t: -1 for t in self.task_names}
        if not isinstance(branch_at, Mapping):
            raise ConfigError(f"arch.branch_at={branch_at!r} must map task groups to stage indices")
        points = parse_branch_points(branch_at, self.task_names, num_stages)
        self.partitions = stage_partitions(points, self.task_names, num_stages)
        self.branches = nn.ModuleList(
            nn.ModuleDict({self.key(g): encoder.build().stages[s] for g in groups})
            for s, groups in enumerate(self.partitions)
        )
        self.heads = build_heads(tasks, probe)
        self.trunk_length = next((s for s, groups in enumerate(self.partitions) if len(groups) > 1), num_stages)
        first_split = self.partitions[self.trunk_length] if self.trunk_length < num_stages else []
        self.has_representation = self.trunk_length > 0 and all(len(g) == 1 for g in first_split)

    @staticmethod
    def key(group: Group) -> str:
        return GROUP_SEPARATOR.join(group)

    def _group_of(self, stage: int, task: str) -> Group:
        return next(g for g in self.partitions[stage] if task in g)

    def _run(self, features: dict[Group, Tensor], start: int) -> dict[str, Tensor]:
        """Run stages ``start..`` from the outputs of stage ``start - 1`` (keyed by group)."""
        for s in range(start, len(self.partitions)):
            features = {
                g: self.branches[s][self.key(g)](features[self._group_of(s - 1, g[0]) if s else ()])
                for g in self.partitions[s]
            }
        last = len(self.partitions) - 1
        return {t: features[self._group_of(last, t)] for t in self.task_names}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self._run({(): x}, 0)
        return {t: self.heads[t](features[t]) for t in self.task_names}

    def task_output(self, x: Tensor, task: str) -> Tensor:
        for s in range(len(self.partitions)):  # only the branches on task's path from the root
            x = self.branches[s][self.key(self._group_of(s, task))](x)
        return self.heads[task](x)

    def encode(self, x: Tensor) -> Tensor:
        if not self.has_representation:
            return super().encode(x)
        for s in range(self.trunk_length):
            x = self.branches[s][self.key(tuple(self.task_names))](x)
        return x

    def decode(self, representation: Tensor) -> dict[str, Tensor]:
        if not self.has_representation:
            return super().decode(representation)
        features = self._run({tuple(self.task_names): representation}, self.trunk_length)
        return {t: self.heads[t](features[t]) for t in self.task_names}

    def task_modules(self, task: str) -> list[nn.Module]:
        own = [self.branches[s][task] for s, groups in enumerate(self.partitions) if (task,) in groups]
        return [*own, self.heads[task]]

"""Planted task clusters of the synthetic dataset (``dataset.clusters``): exact cosines of the task
weight vectors within and across clusters, the assignment, the errors, and the default unchanged."""

from __future__ import annotations

import itertools

import pytest
import torch

from mtlrun.data import DATASETS
from mtlrun.data.benchmarks.synthetic import cluster_assignment, clustered_synthetic, mmoe_synthetic
from mtlrun.errors import ConfigError


def weights(cluster_of: list[int], p: float, scale: float = 2.0, dim: int = 20) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return clustered_synthetic(50, dim, p, cluster_of, scale, 5, 0.1, g)[3]


def cosines(w: torch.Tensor) -> torch.Tensor:
    unit = w / w.norm(dim=1, keepdim=True)
    return unit @ unit.T


@pytest.mark.parametrize(("clusters", "tasks"), [(2, 6), (3, 7), (4, 5), (1, 3), (3, 3)])
@pytest.mark.parametrize("p", [0.3, 0.8, 1.0])
def test_cosines_are_exact_within_and_across_clusters(clusters, tasks, p):
    cluster_of = cluster_assignment(clusters, tasks)
    w = weights(cluster_of, p)
    torch.testing.assert_close(w.norm(dim=1), torch.full((tasks,), 2.0, dtype=torch.float64))
    cos = cosines(w)
    for j, k in itertools.combinations(range(tasks), 2):
        want = p if cluster_of[j] == cluster_of[k] else -p / (clusters - 1)
        assert cos[j, k].item() == pytest.approx(want, abs=1e-12), (j, k)


def test_two_clusters_point_opposite_ways():
    w = weights(cluster_assignment(2, 4), 1.0)  # p = 1: each task is its cluster's direction
    torch.testing.assert_close(w[0], w[1])
    torch.testing.assert_close(w[2], -w[0])


def test_contiguous_blocks_and_the_list_form():
    assert cluster_assignment(2, 6) == [0, 0, 0, 1, 1, 1]
    assert cluster_assignment(3, 7) == [0, 0, 0, 1, 1, 2, 2]
    assert cluster_assignment([5, 2, 5, 2], 4) == [0, 1, 0, 1]
    cos = cosines(weights(cluster_assignment([5, 2, 5, 2], 4), 0.6))
    assert cos[0, 2].item() == pytest.approx(0.6, abs=1e-12)
    assert cos[0, 1].item() == pytest.approx(-0.6, abs=1e-12)


def test_the_linear_parts_correlate_as_the_weights():
    g = torch.Generator().manual_seed(0)
    _, _, linear, _ = clustered_synthetic(20000, 30, 0.6, [0, 0, 1, 1], 1.0, 5, 0.1, g)
    r = torch.corrcoef(linear.T)
    assert r[0, 1].item() == pytest.approx(0.6, abs=0.05)
    assert r[0, 2].item() == pytest.approx(-0.6, abs=0.05)


def test_info_records_the_planted_grouping():
    d = DATASETS.build("synthetic", {"num_tasks": 6, "clusters": 2, "num_samples": 240, "correlation": 0.7})
    assert d.info["clusters"] == 2
    assert d.info["planted_groups"] == [["t1", "t2", "t3"], ["t4", "t5", "t6"]]
    assert d.info["cross_cluster_cosine"] == pytest.approx(-0.7)
    assert len(d.train) + len(d.val) + len(d.test) == 240


def test_default_is_the_mmoe_generator_unchanged():
    options = {"num_tasks": 3, "num_samples": 240, "input_dim": 10, "correlation": -0.4}
    d, off = DATASETS.build("synthetic", options), DATASETS.build("synthetic", {**options, "clusters": 0})
    assert "clusters" not in d.info
    for a, b in zip((d.train, d.val, d.test), (off.train, off.val, off.test)):
        assert torch.equal(a.x, b.x) and all(torch.equal(a.targets[t], b.targets[t]) for t in d.tasks)
    x, y, _ = mmoe_synthetic(240, 10, -0.4, 3, 1.0, 5, 0.1, torch.Generator().manual_seed(0))
    everything = torch.cat([d.train.x, d.val.x, d.test.x])
    assert torch.equal(everything.sort(0).values, x.sort(0).values)  # the same rows, split


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clusters": 5, "num_tasks": 4}, "dataset.clusters=5 must be <= dataset.num_tasks=4"),
        ({"clusters": -1}, "dataset.clusters=-1 must be >= 0"),
        ({"clusters": 2, "correlation": -0.5}, "dataset.correlation=-0.5 must be in (0, 1]"),
        ({"clusters": 2, "correlation": 0.0}, "dataset.correlation=0.0 must be in (0, 1]"),
        ({"clusters": [0, 1, 1], "num_tasks": 2}, "must list one integer cluster per task"),
        ({"clusters": 2, "num_tasks": 4, "input_dim": 5}, "dataset.input_dim=5 must be >= 6"),
    ],
)
def test_bad_values_are_one_line_errors(options, message):
    with pytest.raises(ConfigError) as err:
        DATASETS.build("synthetic", {"num_samples": 120, **options})
    assert message in str(err.value) and "\n" not in str(err.value)

"""GO4Align: risk-guided indicators, grouped by exact one-dimensional k-means."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mtlrun.balancers import BALANCERS
from mtlrun.balancers.go4align import kmeans_1d
from mtlrun.errors import ConfigError
from tests.balancers.weighting_toys import bare_context


def build(num_tasks: int, **options):
    return BALANCERS.build("go4align", options, tasks=[f"t{i}" for i in range(num_tasks)]).double()


def indicators(losses: list[float], steps: int, eta: float) -> torch.Tensor:
    """gamma after ``steps`` steps on the same losses, computed from the paper's formulas."""
    L = torch.tensor(losses, dtype=torch.float64)
    omega = torch.softmax(-eta * steps * L, dim=0)  # omega_0 uniform, k multiplicative updates
    return L.sum() / L * omega


def test_planted_groups_are_recovered_and_share_their_mean_indicator():
    losses = [1.0, 1.1, 10.0, 11.0, 0.95]  # gamma ~ 1 / L: {t0, t1, t4} and {t2, t3}
    balancer = build(5, num_groups=2, eta=0.05)
    w = balancer.weights(torch.tensor(losses, dtype=torch.float64), bare_context())
    gamma = indicators(losses, steps=1, eta=0.05)
    small, large = [0, 1, 4], [2, 3]
    assert torch.allclose(w[small], gamma[small].mean().expand(3), rtol=1e-12)
    assert torch.allclose(w[large], gamma[large].mean().expand(2), rtol=1e-12)
    assert w[small].unique().numel() == 1 and w[large].unique().numel() == 1
    assert float(w[small][0]) > float(w[large][0])


def test_one_group_per_task_makes_every_weighted_loss_omega_times_the_total():
    """K = T: w_t L_t = omega_t sum_s L_s, and omega tilts by exp(-eta L) at every step."""
    losses = [0.5, 2.0, 3.0]
    balancer = build(3, num_groups=3, eta=0.1)
    L = torch.tensor(losses, dtype=torch.float64)
    for step in range(1, 4):
        w = balancer.weights(L, bare_context(step=step))
        omega = torch.softmax(-0.1 * step * L, dim=0)
        assert torch.allclose(w * L, omega * L.sum(), rtol=1e-12)
        assert torch.allclose(balancer.alignment, omega, rtol=1e-12)


def test_a_single_group_is_a_scaled_equal_weighting():
    losses = torch.tensor([0.3, 4.0, 1.5, 2.5], dtype=torch.float64)
    w = build(4, num_groups=1).weights(losses, bare_context())
    assert torch.allclose(w, indicators(losses.tolist(), 1, 1e-4).mean().expand(4), rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("groups", [2, 3])
def test_kmeans_1d_is_the_global_optimum(seed, groups):
    values = torch.rand(6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def within(labels) -> float:
        total = 0.0
        for g in set(labels):
            members = values[[i for i, label in enumerate(labels) if label == g]]
            total += float(((members - members.mean()) ** 2).sum())
        return total

    best = min(within(labels) for labels in itertools.product(range(groups), repeat=6) if len(set(labels)) == groups)
    labels = kmeans_1d(values, groups).tolist()
    assert len(set(labels)) == groups
    assert math.isclose(within(labels), best, rel_tol=1e-9, abs_tol=1e-15)


def test_absent_task_gets_weight_zero_and_keeps_its_alignment():
    balancer = build(3, num_groups=2, eta=0.1)
    ctx = bare_context()
    ctx.present = torch.tensor([True, False, True])
    before = balancer.alignment.clone()
    w = balancer.weights(torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64), ctx)
    assert float(w[1]) == 0.0 and bool(torch.isfinite(w).all())
    assert float(balancer.alignment[1]) == float(before[1])
    assert math.isclose(float(balancer.alignment.sum()), float(before.sum()), rel_tol=1e-12)


def test_num_groups_must_be_positive():
    with pytest.raises(ConfigError, match=r"balancer\.num_groups=0"):
        build(3, num_groups=0)

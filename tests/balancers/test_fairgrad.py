"""FairGrad: the alpha-fair optimality condition G w = w^(-1/alpha)."""

from __future__ import annotations

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.balancers.gradient_toys import build, random_jacobian, weights


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("num_tasks,seed", [(2, 0), (3, 1), (5, 2)])
def test_weights_satisfy_the_optimality_condition(alpha, num_tasks, seed):
    J = random_jacobian(num_tasks, seed=seed)
    w = weights(build("fairgrad", num_tasks, alpha=alpha), J)
    assert torch.all(w > 0)
    assert torch.allclose((J @ J.T) @ w, w ** (-1 / alpha), rtol=1e-8)


def test_alpha_one_is_nash_mtl():
    J = random_jacobian(4, seed=3)
    nash = weights(build("nash_mtl", 4, max_norm=0.0), J)
    assert torch.allclose(weights(build("fairgrad", 4, alpha=1.0), J), nash, rtol=1e-9)


def test_large_alpha_equalises_the_improvements():
    """alpha -> infinity is max-min fairness: the task improvements g_i . d become equal."""
    J = random_jacobian(3, seed=4)
    d = weights(build("fairgrad", alpha=1e4), J) @ J
    improvements = J @ d
    assert (improvements.max() - improvements.min()) / improvements.mean() < 1e-2


def test_alpha_must_be_positive():
    with pytest.raises(ConfigError, match=r"balancer\.alpha=0"):
        build("fairgrad", alpha=0.0)

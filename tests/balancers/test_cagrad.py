"""CAGrad: the mean gradient at c=0 and the primal-dual optimality of the update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from mtlrun.errors import ConfigError
from tests.balancers.gradient_toys import build, random_jacobian, update


def dual_objective(w: np.ndarray, G: np.ndarray, c: float) -> float:
    T = len(G)
    g0_norm = math.sqrt(np.ones(T) @ G @ np.ones(T)) / T
    return float(w @ G @ np.ones(T) / T + c * g0_norm * math.sqrt(max(w @ G @ w, 0.0)))


def scipy_dual(G: np.ndarray, c: float) -> float:
    T = len(G)
    values = []
    for start in [np.full(T, 1.0 / T), *np.eye(T)]:
        result = minimize(
            dual_objective,
            start,
            args=(G, c),
            bounds=[(0, 1)] * T,
            method="SLSQP",
            constraints={"type": "eq", "fun": lambda w: w.sum() - 1},
            options={"ftol": 1e-14, "maxiter": 1000},
        )
        values.append(result.fun)
    return min(values)


def test_c_zero_is_the_mean_gradient():
    J = random_jacobian(4, seed=0)
    assert torch.allclose(update(build("cagrad", 4, c=0.0), J), J.mean(0), atol=1e-12)


@pytest.mark.parametrize("num_tasks,seed", [(2, 0), (3, 1), (3, 2), (5, 3)])
@pytest.mark.parametrize("c", [0.2, 0.4, 0.8])
def test_worst_case_improvement_matches_the_dual_optimum(num_tasks, seed, c):
    J = random_jacobian(num_tasks, dim=7, seed=seed)
    G = (J @ J.T).numpy()
    g0 = J.mean(0)
    d = update(build("cagrad", num_tasks, c=c, rescale=0), J)
    radius = c * g0.norm()
    assert (d - g0).norm() <= radius * (1 + 1e-9)  # the update lies in the ball
    worst = float((J @ d).min())
    # strong duality: the primal worst-case improvement equals the dual optimum, found here by SLSQP
    assert worst == pytest.approx(scipy_dual(G, c), rel=1e-5, abs=1e-7)
    # no point of the ball does better (random points on its boundary)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(200):
        u = torch.randn(J.shape[1], generator=generator, dtype=torch.float64)
        other = g0 + radius * u / u.norm()
        assert float((J @ other).min()) <= worst + 1e-9


def test_rescale_options_divide_the_update():
    J = random_jacobian(3, seed=4)
    plain = update(build("cagrad", c=0.4, rescale=0), J)
    assert torch.allclose(update(build("cagrad", c=0.4, rescale=1), J), plain / (1 + 0.4**2))
    assert torch.allclose(update(build("cagrad", c=0.4, rescale=2), J), plain / 1.4)


def test_pareto_stationary_point_gives_the_mean_direction():
    J = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)  # the mean gradient is zero
    assert torch.allclose(update(build("cagrad", 2, rescale=0), J), torch.zeros(2, dtype=torch.float64))


def test_negative_c_is_a_config_error():
    with pytest.raises(ConfigError, match=r"balancer\.c=-1"):
        build("cagrad", c=-1.0)


def test_closed_form_on_supports_agrees_with_the_root_search(monkeypatch):
    from mtlrun.balancers import solvers

    used = vertices = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        T, P = int(rng.integers(2, 7)), int(rng.integers(2, 12))
        J = rng.normal(size=(T, P)) * rng.uniform(0.01, 10, size=(T, 1))
        if seed % 3 == 0:
            J[1] = -0.9 * J[0] + 0.01 * J[1]  # a strong conflict: small supports
        G, c = J @ J.T, float(rng.choice([0.1, 0.5, 1.0, 2.0]))
        Gn = solvers.symmetric(G) / solvers.scale_of(G)
        a = Gn @ np.full(T, 1.0 / T)
        answer = solvers.cagrad_on_supports(Gn, a, c * math.sqrt(a.mean()))
        used += answer is not None
        vertices += answer is not None and np.count_nonzero(answer[0]) == 1
        closed = solvers.cagrad_weights(G, c)
        with monkeypatch.context() as m:
            m.setattr(solvers, "MAX_ENUMERATED_TASKS", 0)
            searched = solvers.cagrad_weights(G, c)
        direction = [J.T @ (np.full(T, 1.0 / T) + ratio * w) for w, ratio in (closed, searched)]
        assert np.allclose(*direction, rtol=1e-6, atol=1e-8 * np.abs(J).max())
    assert used > 200  # the closed form answers most problems; the rest are left to the root search
    assert 20 < vertices < used  # both vertices and larger supports answer some

"""UPGrad and DualProj: non-conflicting updates, checked against direct projections in parameter space."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from tests.balancers.gradient_toys import build, random_jacobian, update, weights


def project_onto_dual_cone(J: np.ndarray, g: np.ndarray) -> np.ndarray:
    """argmin_x ||x - g||^2 s.t. J x >= 0, solved directly over x by SLSQP (independent of the dual QP)."""
    result = minimize(
        lambda x: ((x - g) ** 2).sum(),
        g,
        jac=lambda x: 2 * (x - g),
        method="SLSQP",
        constraints={"type": "ineq", "fun": lambda x: J @ x, "jac": lambda x: J},
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return result.x


def conflicting_jacobian(num_tasks: int, seed: int) -> torch.Tensor:
    J = random_jacobian(num_tasks, dim=6, seed=seed)
    J[1] = -0.7 * J[0] + 0.3 * J[1]  # make sure at least one pair conflicts
    return J


@pytest.mark.parametrize("num_tasks,seed", [(2, 0), (3, 1), (4, 2)])
def test_upgrad_never_conflicts_and_averages_the_projections(num_tasks, seed):
    J = conflicting_jacobian(num_tasks, seed)
    d = update(build("upgrad", num_tasks), J)
    assert torch.all(J @ d >= -1e-10)
    projections = [project_onto_dual_cone(J.numpy(), g.numpy()) for g in J]
    assert np.allclose(d.numpy(), np.mean(projections, axis=0), atol=1e-6)


@pytest.mark.parametrize("num_tasks,seed", [(2, 3), (3, 4), (4, 5)])
def test_dualproj_is_the_projection_of_the_mean(num_tasks, seed):
    J = conflicting_jacobian(num_tasks, seed)
    d = update(build("dualproj", num_tasks), J)
    assert torch.all(J @ d >= -1e-10)
    assert np.allclose(d.numpy(), project_onto_dual_cone(J.numpy(), J.mean(0).numpy()), atol=1e-6)


@pytest.mark.parametrize("name", ["upgrad", "dualproj"])
def test_non_conflicting_gradients_give_the_mean(name):
    J = torch.rand(3, 5, dtype=torch.float64)
    assert torch.allclose(weights(build(name), J), torch.full((3,), 1 / 3, dtype=torch.float64), atol=1e-12)

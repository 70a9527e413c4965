"""IMTL: equal projections (IMTL-G), learned loss scales (IMTL-L) and their hybrid."""

from __future__ import annotations

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.balancers.gradient_toys import build, random_jacobian, shared_grad, shared_jacobian, toy_step, weights


def paper_closed_form(J: torch.Tensor) -> torch.Tensor:
    """Eq. 7 of the paper: alpha_{2:T} = g_1 U^T (D U^T)^{-1} with D, U differences to task 1."""
    units = J / J.norm(dim=1, keepdim=True)
    D = J[0:1] - J[1:]
    U = units[0:1] - units[1:]
    rest = J[0] @ U.T @ torch.linalg.inv(D @ U.T)
    return torch.cat([1 - rest.sum().unsqueeze(0), rest])


@pytest.mark.parametrize("num_tasks,seed", [(2, 0), (3, 1), (5, 2)])
def test_imtl_g_has_equal_projections_on_every_unit_gradient(num_tasks, seed):
    J = random_jacobian(num_tasks, seed=seed)
    w = weights(build("imtl", num_tasks, mode="gradient"), J)
    g = w @ J
    projections = (J / J.norm(dim=1, keepdim=True)) @ g
    assert torch.allclose(projections, projections.mean().expand(num_tasks), atol=1e-10)
    assert w.sum().item() == pytest.approx(1.0)
    assert torch.allclose(w, paper_closed_form(J), atol=1e-9)


def test_imtl_l_scales_losses_and_learns_their_log_scales():
    toy = toy_step(3)
    balancer = build("imtl", mode="loss")
    with torch.no_grad():
        balancer.log_scales.copy_(torch.tensor([0.0, 0.5, -0.5]))
    losses = torch.stack(list(toy.losses.values())).detach()
    info = balancer.backward(toy.losses, toy.ctx)
    scales = torch.tensor([0.0, 0.5, -0.5]).exp()
    assert torch.allclose(info.weights, scales)
    assert torch.allclose(balancer.log_scales.grad, scales * losses - 1, atol=1e-6)


def test_hybrid_applies_imtl_g_to_the_scaled_losses():
    toy = toy_step(3, seed=1)
    balancer = build("imtl", mode="hybrid")
    with torch.no_grad():
        balancer.log_scales.copy_(torch.tensor([0.3, 0.0, -0.2]))
    scales = balancer.log_scales.detach().exp()
    losses = torch.stack(list(toy.losses.values())).detach()
    J = shared_jacobian(toy).double() * scales.double()[:, None]
    info = balancer.backward(toy.losses, toy.ctx)
    alpha = weights(build("imtl", mode="gradient"), J)
    assert torch.allclose(shared_grad(toy).double(), alpha @ J, atol=1e-5)
    assert torch.allclose(info.weights.double(), alpha * scales.double(), atol=1e-5)
    assert torch.allclose(balancer.log_scales.grad, scales * losses - 1, atol=1e-6)
    assert all(p.grad is not None for head in toy.heads for p in head.parameters())


def test_log_scales_are_parameters_only_when_used():
    assert len(list(build("imtl", mode="gradient").parameters())) == 0
    assert len(list(build("imtl", mode="hybrid").parameters())) == 1


def test_bad_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="balancer.mode"):
        build("imtl", mode="both")

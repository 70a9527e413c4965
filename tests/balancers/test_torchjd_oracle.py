"""mtlrun's aggregators agree with torchjd's on the same random Jacobians (where definitions match)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from tests.balancers.gradient_toys import build, random_jacobian, update, weights

aggregation = pytest.importorskip("torchjd.aggregation")

CASES = [(2, 0), (3, 1), (3, 2), (5, 3)]


def projector():
    """torchjd's QP projector without its default ridge (reg_eps=1e-4 on the trace-normalised Gramian),
    which moves its answer by ~1e-4; mtlrun solves the unregularised QP exactly."""
    from torchjd.linalg import QuadprogProjector

    return QuadprogProjector(norm_eps=0.0, reg_eps=0.0)


def jacobian(num_tasks: int, seed: int) -> torch.Tensor:
    scales = torch.linspace(0.5, 3.0, num_tasks, dtype=torch.float64)[:, None]
    return random_jacobian(num_tasks, dim=10, seed=seed) * scales


EXACT = {
    "upgrad": ({}, lambda T: aggregation.UPGrad(projector=projector())),
    "dualproj": ({}, lambda T: aggregation.DualProj(projector=projector())),
    "imtl": ({"mode": "gradient"}, lambda T: aggregation.IMTLG()),
    "conflict_free": ({}, lambda T: aggregation.ConFIG()),
    "fairgrad": ({"alpha": 2.0}, lambda T: aggregation.FairGrad(alpha=2.0)),
}


@pytest.mark.parametrize("name", sorted(EXACT))
@pytest.mark.parametrize("num_tasks,seed", CASES)
def test_exact_methods_agree(name, num_tasks, seed):
    options, make = EXACT[name]
    J = jacobian(num_tasks, seed)
    ours = update(build(name, num_tasks, **options), J)
    theirs = make(num_tasks)(J)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("num_tasks,seed", CASES)
def test_mgda_agrees_and_has_the_smaller_norm(num_tasks, seed):
    """torchjd's MGDA is the paper's Frank-Wolfe, which converges sublinearly; mtlrun solves the min-norm
    problem exactly. Agreement to Frank-Wolfe's accuracy, and mtlrun's point is never longer."""
    J = jacobian(num_tasks, seed)
    ours = update(build("mgda", num_tasks), J)
    theirs = aggregation.MGDA(epsilon=1e-12, max_iters=100_000)(J)
    assert torch.allclose(ours, theirs, rtol=1e-3, atol=1e-3)
    assert ours.norm() <= theirs.norm() * (1 + 1e-12)


@pytest.mark.parametrize(
    "name,options,make",
    [
        ("pcgrad", {}, lambda: aggregation.PCGrad()),
        ("gradvac", {"beta": 0.5}, lambda: aggregation.GradVac(beta=0.5)),
    ],
)
@pytest.mark.parametrize("num_tasks,seed", CASES)
def test_random_order_methods_agree_under_the_same_seed(name, options, make, num_tasks, seed):
    """Both draw one torch.randperm per task from the global RNG, so the same seed gives the same order."""
    J = jacobian(num_tasks, seed)
    if num_tasks > 1:
        J[1] = -0.5 * J[0] + 0.5 * J[1]  # a conflict, so projections happen
    ours_balancer, theirs_aggregator = build(name, num_tasks, **options), make()
    for step in range(3):  # gradvac: the EMA targets evolve identically too
        torch.manual_seed(step)
        ours = update(ours_balancer, J)
        torch.manual_seed(step)
        theirs = theirs_aggregator(J)
        assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("num_tasks,seed", CASES)
def test_aligned_mtl_agrees_up_to_the_task_count(num_tasks, seed):
    """Differs on purpose: mtlrun sums the aligned gradients like the authors' code (weights B 1);
    torchjd averages them (B 1/T). The directions agree after scaling by T."""
    J = jacobian(num_tasks, seed)
    ours = update(build("aligned_mtl", num_tasks), J)
    assert torch.allclose(ours, num_tasks * aggregation.AlignedMTL()(J), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("num_tasks,seed", CASES)
def test_cagrad_agrees_and_solves_the_dual_at_least_as_well(num_tasks, seed):
    """torchjd's CAGrad is the authors' rescale=0 variant, solved by an interior-point method (Clarabel):
    agreement to its tolerance, and mtlrun's dual objective is never worse."""
    pytest.importorskip("cvxpy")
    J = jacobian(num_tasks, seed)
    ours = update(build("cagrad", num_tasks, c=0.4, rescale=0), J)
    theirs = aggregation.CAGrad(c=0.4, norm_eps=0.0)(J)
    assert torch.allclose(ours, theirs, rtol=1e-3, atol=1e-4)
    worst_ours, worst_theirs = float((J @ ours).min()), float((J @ theirs).min())
    assert worst_ours >= worst_theirs - 1e-9 * abs(worst_theirs)


@pytest.mark.parametrize("num_tasks,seed", CASES)
def test_nash_mtl_agrees_and_satisfies_the_condition_more_tightly(num_tasks, seed):
    """torchjd follows the paper's CCP iterations (cvxpy/ECOS, stopping at a residual of 1e-3); mtlrun
    solves G a = 1/a by Newton. Same solution within CCP's tolerance; mtlrun's residual is smaller."""
    pytest.importorskip("cvxpy")
    J = jacobian(num_tasks, seed)
    ours_weights = weights(build("nash_mtl", num_tasks, max_norm=0.0), J)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aggregator = aggregation.NashMTL(n_tasks=num_tasks, max_norm=0.0)
        theirs_weights = aggregator.weighting(J)
    assert torch.allclose(ours_weights, theirs_weights.to(J), rtol=2e-2)
    G = (J @ J.T).numpy()

    def residual(a):
        a = np.asarray(a, dtype=np.float64)
        return np.abs(G @ a * a - 1).max()

    assert residual(ours_weights) <= residual(theirs_weights) + 1e-12
    assert residual(ours_weights) < 1e-8

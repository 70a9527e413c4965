"""experiments/toy_conflict.py: CAGrad's toy problem (checked against an independent implementation and
its Pareto set), the preset composes with every balancer, and the run draws and records its results."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlrun.balancers import BALANCERS
from mtlrun.errors import ConfigError

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


@pytest.fixture(scope="module")
def toy():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import toy_conflict

        yield toy_conflict
    finally:
        sys.path.remove(str(EXPERIMENTS))


def reference(x1: float, x2: float) -> tuple[float, float]:
    """CAGrad's Toy written out again with the math module, term by term."""
    c1 = max(math.tanh(0.5 * x2), 0.0)
    c2 = max(math.tanh(-0.5 * x2), 0.0)
    valley1 = math.log(max(abs(0.5 * (-x1 - 7) - math.tanh(-x2)), 5e-6)) + 6
    valley2 = math.log(max(abs(0.5 * (-x1 + 3) + math.tanh(-x2) + 2), 5e-6)) + 6
    bowl1 = ((7 - x1) ** 2 + 0.1 * (x2 + 8) ** 2) / 10 - 20
    bowl2 = ((7 + x1) ** 2 + 0.1 * (x2 + 8) ** 2) / 10 - 20
    return c1 * valley1 + c2 * bowl1, c1 * valley2 + c2 * bowl2


def reference_grads(x1: float, x2: float, h: float = 1e-6) -> np.ndarray:
    """(2 losses, 2 parameters) by central differences of :func:`reference`."""
    out = np.zeros((2, 2))
    for j, (dx, dy) in enumerate([(h, 0.0), (0.0, h)]):
        hi, lo = reference(x1 + dx, x2 + dy), reference(x1 - dx, x2 - dy)
        out[:, j] = (np.array(hi) - np.array(lo)) / (2 * h)
    return out


def min_norm(grads: np.ndarray) -> float:
    """The norm of the smallest convex combination of two gradients (zero exactly at a Pareto-stationary point)."""
    g1, g2 = grads
    d = g1 - g2
    w = float(np.clip((g2 - g1) @ g2 / (d @ d), 0, 1))
    return float(np.linalg.norm(w * g1 + (1 - w) * g2))


POINTS = [
    (-8.5, 7.5),
    (-8.5, -5.0),
    (9.0, 9.0),
    (-7.5, -0.5),
    (9.0, -1.0),
    (0.0, 0.0),
    (3.3, 2.2),
    (-5.0, -8.3552),
    (-7.0 + 2 * math.tanh(0.7), 0.7),
]  # the last on f1's valley floor (the clamp)


def test_toy_matches_an_independent_implementation(toy):
    x = torch.tensor(POINTS, dtype=torch.float64)
    f1, f2 = toy.toy_losses(x)
    for i, (a, b) in enumerate(POINTS):
        r1, r2 = reference(a, b)
        assert f1[i].item() == pytest.approx(r1, rel=1e-12, abs=1e-12), (a, b)
        assert f2[i].item() == pytest.approx(r2, rel=1e-12, abs=1e-12), (a, b)
    assert f1[-1].item() == pytest.approx(math.tanh(0.35) * (math.log(5e-6) + 6), abs=1e-9)  # the clamp's floor
    # the problem is mirror-symmetric: f2(x1, x2) = f1(-x1, x2)
    g1, g2 = toy.toy_losses(torch.tensor([[-a, b] for a, b in POINTS], dtype=torch.float64))
    assert torch.allclose(g2, f1, atol=1e-12) and torch.allclose(g1, f2, atol=1e-12)


def test_autograd_gradients_match_finite_differences(toy):
    for a, b in POINTS[:-1]:
        if b == 0:  # the blend's kink (clamp at 0): autograd takes one side, differences average both
            continue
        x = torch.tensor([a, b], dtype=torch.float64, requires_grad=True)
        f1, f2 = toy.toy_losses(x)
        g1 = torch.autograd.grad(f1, x, retain_graph=True)[0].numpy()
        g2 = torch.autograd.grad(f2, x)[0].numpy()
        np.testing.assert_allclose(np.stack([g1, g2]), reference_grads(a, b), atol=1e-5)


def test_the_papers_pareto_set(toy):
    # on x2 = -8.3552 the two gradients cancel (a convex combination vanishes): exactly at x1 = 0 ...
    assert min_norm(reference_grads(0.0, toy.PARETO_X2)) < 1e-4
    # ... and along x1 in [-7, 7] the Pareto-stationary height (where the stationary weight w = (1 + x1/7) / 2
    # zeroes the x2-derivative) stays within 0.1 of it, so "on the set" is distance <= 0.1
    for x1 in np.linspace(-7, 7, 15):
        w = (1 + x1 / 7) / 2

        def slope(x2, x1=x1, w=w):
            g = reference_grads(x1, x2)
            return w * g[0, 1] + (1 - w) * g[1, 1]

        lo, hi = -9.5, -7.5
        assert slope(lo) < 0 < slope(hi)
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if slope(mid) < 0 else (lo, mid)
        assert abs(lo - toy.PARETO_X2) < 0.1, (x1, lo)
        assert min_norm(reference_grads(x1, lo)) < 1e-4
    # off the set no combination vanishes: beyond its ends and above it
    for point in [(8.0, toy.PARETO_X2), (-8.0, toy.PARETO_X2), (0.0, -7.0), (0.0, -9.5), (-8.5, 7.5)]:
        assert min_norm(reference_grads(*point)) > 0.01, point
    assert toy.pareto_distance([3.0, toy.PARETO_X2]) == 0 and toy.pareto_distance([8.0, -8.3552]) == 1


def test_the_preset_composes_with_every_balancer(toy):
    settings = toy.load_settings()
    assert settings.balancers == BALANCERS.names()  # every registered balancer, none left out
    assert settings.inits == [[-8.5, 7.5], [-8.5, -5.0], [9.0, 9.0], [-7.5, -0.5], [9.0, -1.0]]
    for name in settings.balancers:
        balancer = toy.build_balancer(name, settings.options.get(name, {}))
        assert balancer.tasks == ["f1", "f2"]
    header = toy.PRESET.read_text().split("\nsteps:")[0]
    for words in ("Reproduces", "Expected", "Command: python experiments/toy_conflict.py", "NeurIPS 2021"):
        assert words in header


def test_overrides_are_checked_before_anything_is_written(toy, tmp_path, capsys):
    out = tmp_path / "toy"
    for bad, named in [
        ("stepz=3", "stepz"),
        ("balancers=[ew,nope]", "nope"),
        ("lr=-1", "lr"),
        ("inits=[[1,2,3]]", "inits"),
        ("steps=0", "steps"),
    ]:
        assert toy.main([bad, f"out={out}"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("toy_conflict: error:") and named in err and "\n" not in err
        assert not out.exists()
    with pytest.raises(ConfigError, match="options: unknown balancer 'nope'"):
        toy.load_settings(["options={nope: {}}"])


def test_every_balancer_steps_through_the_plain_loop(toy):
    settings = toy.load_settings()
    for name in settings.balancers:  # from a start where both losses are positive (gls needs that)
        path = toy.optimise(name, settings.options.get(name, {}), [-8.5, 7.5], 3, 1e-2, 1, 0)
        assert path.failed is None, name
        assert len(path.points) == 4 and path.points[-1] != path.points[0], name


def test_ew_is_adam_on_the_summed_gradient(toy):
    path = toy.optimise("ew", {}, [9.0, 9.0], 20, 1e-3, 20, 0)
    x = torch.tensor([9.0, 9.0], dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([x], lr=1e-3)
    for _ in range(20):
        adam.zero_grad()
        sum(toy.toy_losses(x)).backward()
        adam.step()
    assert path.points[-1] == pytest.approx(x.detach().tolist(), abs=1e-12)


@pytest.mark.slow
def test_the_run_draws_and_records_every_balancer(toy, tmp_path):
    out = tmp_path / "toy"
    assert toy.main(["steps=10", "record_every=5", "inits=[[-8.5,7.5],[9,-1]]", f"out={out}"]) == 0
    for name in ("params.png", "losses.png", "run.md", "summary.json", "trajectories.jsonl"):
        assert (out / name).stat().st_size > 0
    assert (out / "params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["balancers"]) == BALANCERS.names()
    for row in summary["balancers"].values():
        assert len(row["runs"]) == 2 and all(run["failed"] is None for run in row["runs"])
    assert "python experiments/toy_conflict.py steps=10" in (out / "run.md").read_text()


def test_the_recorded_results_are_shown(toy):
    results = EXPERIMENTS / "results" / "toy_conflict"
    readme = (EXPERIMENTS.parent / "README.md").read_text()
    assert "](experiments/results/toy_conflict/params.png)" in readme
    for name in ("params.png", "losses.png"):
        assert (results / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = (results / "run.md").read_text()
    assert "Command: `python experiments/toy_conflict.py`" in record  # the preset as it stands
    settings = toy.load_settings()
    assert f"{len(settings.balancers)} balancers x {len(settings.inits)} starts x {settings.steps} Adam steps" in record

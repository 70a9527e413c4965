"""balancer=torchjd: any torchjd aggregator inside mtlrun, with one-line errors."""

from __future__ import annotations

import importlib

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.balancers.gradient_toys import build, random_jacobian, shared_grad, toy_step, update


def test_missing_torchjd_names_the_extra(monkeypatch):
    real = importlib.import_module

    def without_torchjd(name, *args, **kwargs):
        if name.startswith("torchjd"):
            raise ImportError("No module named 'torchjd'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_torchjd)
    with pytest.raises(ConfigError, match=r"pip install 'mtlrun\[torchjd\]'"):
        build("torchjd")


def test_upgrad_through_the_bridge_matches_mtlrun_upgrad():
    pytest.importorskip("torchjd")
    J = random_jacobian(3, seed=0)
    bridged = update(build("torchjd", aggregator="UPGrad"), J)
    assert torch.allclose(bridged, update(build("upgrad"), J), rtol=1e-3, atol=1e-4)  # torchjd adds a 1e-4 ridge


def test_options_reach_the_aggregator_and_lists_become_tensors():
    pytest.importorskip("torchjd")
    balancer = build("torchjd", aggregator="UPGrad", options={"pref_vector": [0.2, 0.3, 0.5]})
    assert torch.allclose(balancer.aggregator.pref_vector, torch.tensor([0.2, 0.3, 0.5]))
    balancer = build("torchjd", 4, aggregator="NashMTL", options={"max_norm": 2.0})
    assert balancer.aggregator.n_tasks == 4 and balancer.aggregator.max_norm == 2.0


def test_backward_fills_gradients_with_a_direction_aggregator():
    pytest.importorskip("torchjd")
    toy = toy_step(3)
    torch.manual_seed(0)
    info = build("torchjd", aggregator="GradDrop").backward(toy.losses, toy.ctx)
    assert info.weights is None and torch.all(torch.isfinite(shared_grad(toy)))


@pytest.mark.parametrize(
    "options,match",
    [
        ({"aggregator": "Nope"}, r"balancer\.aggregator=Nope is not valid; choose one of: .*UPGrad"),
        ({"aggregator": "CAGrad", "options": {"d": 1}}, r"unknown key 'balancer\.options\.d'.*valid keys: c, norm_eps"),
        ({"aggregator": "CAGrad", "options": {"c": -1.0}}, r"balancer\.options for torchjd CAGrad are not valid"),
        ({"aggregator": "GradDrop", "update_every": 2}, r"balancer\.update_every=2 needs an aggregator"),
    ],
)
def test_mistakes_are_one_line_config_errors(options, match):
    pytest.importorskip("torchjd")
    with pytest.raises(ConfigError, match=match) as caught:
        build("torchjd", **options)
    assert "\n" not in str(caught.value)

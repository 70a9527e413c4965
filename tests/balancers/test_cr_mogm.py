"""CR-MOGM: the base method's weights under an exponential moving average."""

from __future__ import annotations

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.balancers.gradient_toys import build, random_jacobian, weights


@pytest.mark.parametrize("base", ["mgda", "nash_mtl", "upgrad"])
def test_weights_follow_the_moving_average_of_the_base_weights(base):
    smoothed = build("cr_mogm", 3, base=base, alpha=0.7).double()
    reference = build(base, 3)
    lam = None
    for step in range(4):
        J = random_jacobian(3, seed=step)
        raw = weights(reference, J)
        lam = raw if lam is None else 0.7 * lam + 0.3 * raw
        assert torch.allclose(weights(smoothed, J), lam, rtol=1e-10)


def test_alpha_zero_is_the_base_method():
    J = random_jacobian(4, seed=5)
    assert torch.allclose(weights(build("cr_mogm", 4, alpha=0.0), J), weights(build("mgda", 4), J))


def test_base_options_reach_the_base_method():
    J = random_jacobian(3, seed=6)
    got = weights(build("cr_mogm", 3, base="mgda", base_options={"normalization": "l2"}), J)
    assert torch.allclose(got, weights(build("mgda", 3, normalization="l2"), J))
    assert not torch.allclose(got, weights(build("mgda", 3), J))


def test_a_method_without_weights_is_refused():
    with pytest.raises(ConfigError, match=r"balancer\.base.*graddrop.*valid"):
        build("cr_mogm", base="graddrop")
    with pytest.raises(ConfigError, match=r"balancer\.alpha=1\.5"):
        build("cr_mogm", alpha=1.5)

"""GradDrop: sign purity and sign-consistent masking."""

from __future__ import annotations

import torch

from mtlrun.balancers.graddrop import graddrop_direction
from tests.balancers.gradient_toys import build, update


def test_agreeing_signs_are_kept():
    J = torch.tensor([[1.0, -2.0, 0.5, 3.0], [2.0, -1.0, 0.25, -1.0]], dtype=torch.float64)
    torch.manual_seed(0)
    out = update(build("graddrop", 2), J)
    assert torch.allclose(out[:3], J[:, :3].sum(0))  # every task agrees in sign there
    mixed = out[3].item()
    assert mixed in (3.0, -1.0)  # one sign survives entirely


def test_mixed_signs_keep_the_positive_side_with_probability_purity():
    columns = 20000
    J = torch.tensor([[3.0], [-1.0]], dtype=torch.float64).repeat(1, columns)
    purity = 0.5 * (1 + 2.0 / 4.0)
    generator = torch.Generator().manual_seed(0)
    out = graddrop_direction(J, generator=generator)
    kept_positive = (out == 3.0).double().mean().item()
    assert abs(kept_positive - purity) < 0.02
    assert torch.all((out == 3.0) | (out == -1.0))


def test_full_leak_is_the_plain_sum():
    J = torch.randn(3, 50, dtype=torch.float64)
    assert torch.allclose(update(build("graddrop", 3, leak=1.0), J), J.sum(0))

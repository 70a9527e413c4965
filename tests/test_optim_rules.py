"""The pure update rules reproduce torch.optim step for step, and previews never write state."""

from __future__ import annotations

import copy

import pytest
import torch

from mtlrun.balancers.optim_rules import AdamState, UnsupportedOptimizer, adam, preview_step, sgd

STEPS = 4


def gradients(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, generator=g, dtype=torch.float64) for _ in range(STEPS)]


def torch_trajectory(make, start: torch.Tensor) -> list[torch.Tensor]:
    p = torch.nn.Parameter(start.clone())
    optimizer = make([p])
    out = []
    for grad in gradients():
        p.grad = grad.clone()
        optimizer.step()
        out.append(p.detach().clone())
    return out


START = torch.linspace(-1.0, 2.0, 5, dtype=torch.float64)

ADAM_CASES = [
    {},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "amsgrad": True},
    {"betas": (0.5, 0.9), "eps": 1e-3, "maximize": True},
]


@pytest.mark.parametrize("options", ADAM_CASES, ids=[str(c) for c in ADAM_CASES])
@pytest.mark.parametrize("decoupled", [False, True], ids=["adam", "adamw"])
def test_adam_and_adamw_match_torch_optim(options, decoupled):
    lr, options = 0.05, {"weight_decay": 0.0, **options}  # AdamW's default decay is not Adam's
    kind = torch.optim.AdamW if decoupled else torch.optim.Adam
    expected = torch_trajectory(lambda ps: kind(ps, lr=lr, **options), START)
    theta, state = START.clone(), None
    for grad, want in zip(gradients(), expected):
        theta, state = adam(theta, grad, state, lr=lr, decoupled_weight_decay=decoupled, **options)
        torch.testing.assert_close(theta, want, rtol=1e-13, atol=1e-15)
    assert state.step == STEPS


SGD_CASES = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01},
    {"momentum": 0.8, "nesterov": True, "weight_decay": 0.1},
    {"maximize": True, "weight_decay": 0.1},
]


@pytest.mark.parametrize("options", SGD_CASES, ids=[str(c) for c in SGD_CASES])
def test_sgd_matches_torch_optim(options):
    lr = 0.1
    expected = torch_trajectory(lambda ps: torch.optim.SGD(ps, lr=lr, **options), START)
    theta, buffer = START.clone(), None
    for grad, want in zip(gradients(), expected):
        theta, buffer = sgd(theta, grad, buffer, lr=lr, **options)
        torch.testing.assert_close(theta, want, rtol=1e-13, atol=1e-15)


def test_a_float32_tensor_step_count_is_honoured():
    """Balancers keep the step count in a float32 buffer: the rule must accept it and stay close."""
    theta64, state64 = START.clone(), None
    theta32 = START.float()
    state32 = AdamState(torch.zeros(()), torch.zeros(5), torch.zeros(5))
    for grad in gradients():
        theta64, state64 = adam(theta64, grad, state64, lr=0.01)
        theta32, state32 = adam(theta32, grad.float(), state32, lr=0.01)
    assert isinstance(state32.step, torch.Tensor) and float(state32.step) == STEPS
    torch.testing.assert_close(theta32.double(), theta64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.Adam(ps, lr=0.05, weight_decay=0.1),
        lambda ps: torch.optim.AdamW(ps, lr=0.05),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    ],
    ids=["adam", "adamw", "sgd"],
)
def test_preview_is_the_next_step_and_leaves_the_optimizer_alone(make):
    p = torch.nn.Parameter(START.clone())
    optimizer = make([p])
    grads = gradients()
    for grad in grads[:2]:  # some state first
        p.grad = grad.clone()
        optimizer.step()
    before = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in optimizer.state[p].items()}
    candidates = torch.stack([grads[2], grads[3]])
    previews = preview_step(optimizer, p, candidates)
    for k, v in before.items():
        assert torch.equal(torch.as_tensor(optimizer.state[p][k]), torch.as_tensor(v))
    for preview, grad in zip(previews, candidates):
        twin = copy.deepcopy({"param": p, "optimizer": optimizer})  # the copy keeps the state's keys
        twin["param"].grad = grad.clone()
        twin["optimizer"].step()
        torch.testing.assert_close(preview, twin["param"].detach(), rtol=1e-13, atol=1e-15)


def test_preview_refuses_an_optimizer_without_a_rule():
    p = torch.nn.Parameter(START.clone())
    with pytest.raises(UnsupportedOptimizer, match="RMSprop"):
        preview_step(torch.optim.RMSprop([p], lr=0.1), p, START)

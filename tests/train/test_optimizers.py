"""The trainer's optimizers are torch.optim's, bit for bit, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from mtlrun.train.optimizers import build_optimizer

TORCH_CLASSES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad()
        x = torch.randn(8, 5, generator=generator)
        model(x).pow(2).mean().backward()
        optimizer.step()


@pytest.mark.parametrize("name", sorted(TORCH_CLASSES))
def test_same_weights_and_state_as_torch_optim(name: str) -> None:
    ours_model, torch_model = _model(), _model()
    groups = lambda m: [  # noqa: E731 - two groups, as the trainer builds them (decay and no decay)
        {"params": [m[0].weight, m[2].weight]},
        {"params": [m[0].bias, m[2].bias], "weight_decay": 0.0},
    ]
    ours = build_optimizer(name, groups(ours_model), 0.05, 0.01, 0.9)
    reference = TORCH_CLASSES[name](
        groups(torch_model), lr=0.05, weight_decay=0.01, **({"momentum": 0.9} if name == "sgd" else {})
    )
    assert isinstance(ours, TORCH_CLASSES[name])
    _train(ours_model, ours, 5)
    _train(torch_model, reference, 5)
    for a, b in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        assert torch.equal(a, b)
    ours_state, reference_state = ours.state_dict(), reference.state_dict()
    assert ours_state["param_groups"] == reference_state["param_groups"]
    for key, state in reference_state["state"].items():
        for field, value in state.items():
            assert torch.equal(torch.as_tensor(ours_state["state"][key][field]), torch.as_tensor(value))
    # A checkpoint of one loads into the other and training goes on identically.
    ours.load_state_dict(reference_state)
    reference.load_state_dict(ours_state)
    _train(ours_model, ours, 2)
    _train(torch_model, reference, 2)
    for a, b in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_step_leaves_grad_mode_and_keeps_hooks() -> None:
    model = _model()
    optimizer = build_optimizer("adam", [{"params": list(model.parameters())}], 0.1, 0.0, 0.0)
    calls = []
    optimizer.register_step_post_hook(lambda *_: calls.append("post"))
    model(torch.randn(2, 5)).sum().backward()
    with torch.enable_grad():
        optimizer.step()
        assert torch.is_grad_enabled()
    assert calls == ["post"]


def test_training_with_a_scheduler_does_not_import_dynamo() -> None:
    script = textwrap.dedent(
        """
        import sys, torch
        from mtlrun.train.optimizers import build_optimizer
        for name in ("adam", "adamw", "sgd"):
            model = torch.nn.Linear(4, 2)
            optimizer = build_optimizer(name, [{"params": list(model.parameters())}], 0.1, 0.01, 0.9)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 4)
            for _ in range(3):
                optimizer.zero_grad()
                model(torch.randn(3, 4)).sum().backward()
                optimizer.step()
                scheduler.step()
            optimizer.load_state_dict(optimizer.state_dict())
        print("torch._dynamo" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""A gradient balancer with update_every > 1 resumes from its checkpoint into a fresh instance."""

from __future__ import annotations

import io

import torch

from mtlrun.balancers import BALANCERS, StepContext


def test_cached_weights_load_into_a_fresh_balancer():
    torch.manual_seed(0)
    shared = torch.nn.Parameter(torch.randn(5))
    losses = {"a": (shared**2).sum(), "b": (shared - 1).pow(2).sum()}
    trained = BALANCERS.build("mgda", {"update_every": 3}, tasks=["a", "b"])
    ctx = StepContext(model=torch.nn.Module(), shared_params=[shared], task_params={"a": [], "b": []}, epoch=1, step=0)
    info = trained.backward(losses, ctx)
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    fresh = BALANCERS.build("mgda", {"update_every": 3}, tasks=["a", "b"])
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(fresh.cached_weights, info.weights)
    shared.grad = None
    losses = {"a": (shared**2).sum(), "b": (shared - 1).pow(2).sum()}
    reused = fresh.backward(losses, StepContext(**{**ctx.__dict__, "step": 1}))
    assert torch.equal(reused.weights, info.weights)  # the resumed balancer reuses the checkpointed weights

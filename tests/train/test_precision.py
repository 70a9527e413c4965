"""Mixed precision: fp16 loss scaling is invisible to the gradient methods, bf16 runs on CPU."""

from __future__ import annotations

import pytest
import torch

from mtlrun.balancers.jacobian import GradientOverflow, loss_scaling, task_jacobian
from mtlrun.errors import ConfigError
from mtlrun.train.precision import Precision, scale_gradient
from tests.balancers.gradient_toys import build, toy_step
from tests.conftest import TINY_SYNTHETIC

SCALE = 2.0**16


def _all_grads(toy) -> torch.Tensor:
    params = [*toy.shared.parameters(), *toy.heads.parameters()]
    return torch.cat([p.grad.reshape(-1) for p in params])


def _step(name: str, scale: float | None, rep_grad: bool = False) -> torch.Tensor:
    """``.grad`` after one balancer step on the toy model, divided by the loss scale (if any)."""
    toy = toy_step(num_tasks=3, seed=0)
    balancer = build(name, 3)
    torch.manual_seed(1)  # methods that draw (pcgrad's task order) draw the same
    if scale is None:
        balancer.backward(toy.losses, toy.ctx)
        return _all_grads(toy)
    s = torch.tensor(scale)
    with loss_scaling(s):
        balancer.backward({t: scale_gradient(v, s) for t, v in toy.losses.items()}, toy.ctx)
    return _all_grads(toy) / scale


@pytest.mark.parametrize("name", ["mgda", "pcgrad", "cagrad", "nash_mtl", "upgrad", "ew", "imtl"])
def test_a_large_loss_scale_gives_the_fp32_update(name: str) -> None:
    reference = _step(name, None)
    scaled = _step(name, SCALE)
    assert torch.allclose(scaled, reference, rtol=1e-4, atol=1e-6), (scaled - reference).abs().max()


def test_the_scaled_loss_keeps_its_value_and_scales_its_gradient() -> None:
    w = torch.tensor([1.5, -2.0], requires_grad=True)
    loss = (w**2).sum()
    scaled = scale_gradient(loss, torch.tensor(8.0))
    assert scaled.item() == loss.item()
    scaled.backward()
    assert torch.equal(w.grad, 8.0 * 2 * w.detach())


def test_task_jacobian_is_unscaled_and_refuses_an_overflow() -> None:
    toy = toy_step(num_tasks=2, seed=0)
    stacked = torch.stack(list(toy.losses.values()))
    shared = list(toy.shared.parameters())
    plain = task_jacobian(stacked, shared, retain_graph=True)
    s = torch.tensor(SCALE)
    with loss_scaling(s):
        assert torch.allclose(task_jacobian(scale_gradient(stacked, s), shared, retain_graph=True), plain)
        inf = torch.tensor(float("inf"))
        with loss_scaling(inf), pytest.raises(GradientOverflow):
            task_jacobian(scale_gradient(stacked, inf), shared)


def test_fp16_refuses_lookahead_balancers_with_one_line() -> None:
    precision = Precision("16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="balancer=auto_lambda .*trainer.precision=16"):
        precision.check(build("auto_lambda", 2), "auto_lambda")
    precision.check(build("pcgrad", 2), "pcgrad")  # a Jacobian method is fine
    Precision("bf16", torch.device("cpu")).check(build("auto_lambda", 2), "auto_lambda")


def test_bf16_trains_on_cpu(cli) -> None:
    result = cli(*TINY_SYNTHETIC, "trainer.epochs=1", "trainer.precision=bf16", "report.baselines=false")
    assert result.code == 0, result.err
    assert result.summary()["status"] == "completed"


def test_fp16_with_a_gradient_method_and_rep_grad_on_cpu(cli) -> None:
    args = (*TINY_SYNTHETIC, "trainer.epochs=1", "trainer.precision=16", "report.baselines=false")
    result = cli(*args, "balancer=mgda", "balancer.rep_grad=true")
    assert result.code == 0, result.err
    checkpoint = torch.load(result.run_dirs()[-1] / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["grad_scaler"]["scale"] > 0


def test_fp16_with_a_lookahead_balancer_is_a_one_line_error(cli) -> None:
    result = cli(*TINY_SYNTHETIC, "trainer.precision=16", "balancer=forum", "report.baselines=false")
    assert result.code == 2
    assert "trainer.precision=16" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("name", ["uw", pytest.param("pcgrad", marks=pytest.mark.slow)])
def test_an_fp16_step_updates_model_and_balancer_weights_as_fp32_does(name: str) -> None:
    """One SGD step at fp16 (autocast, scaler) moves every weight as fp32 does: the loss scale is
    undone exactly once, for the model and for the balancer's own weights (uw's log-variances)."""
    from mtlrun.balancers import BALANCERS
    from mtlrun.train.loop import param_groups
    from mtlrun.train.optimizers import build_optimizer
    from tests.train.trainer_toys import small_trainer

    def moved(precision: str) -> torch.Tensor:
        trainer = small_trainer(lambda tasks: BALANCERS.build(name, {}, tasks=tasks), tasks=["left", "right"])
        trainer.optimizer = build_optimizer("sgd", param_groups(trainer.model, trainer.balancer, 0.0), 0.1, 0.0, 0.0)
        trainer.precision = Precision(precision, torch.device("cpu"))
        params = [*trainer.model.parameters(), *trainer.balancer.parameters()]
        before = [p.detach().clone() for p in params]
        batch = next(iter(trainer.data.train.batches(128, shuffle=False)))
        trainer.training_step([batch], epoch=1, lr=0.1)
        return torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(params, before)])

    full, half = moved("32"), moved("16")
    assert torch.nn.functional.cosine_similarity(full, half, dim=0) > 0.99
    assert half.norm() == pytest.approx(full.norm().item(), rel=0.05)
    if name == "uw":
        own = full[-2:], half[-2:]  # the two log-variances
        assert torch.allclose(own[1], own[0], rtol=0.05, atol=1e-6)

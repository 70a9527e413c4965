"""Device tests on a CUDA GPU (``pytest -m gpu``; ``bench/gpu.sh`` runs them): a run on the device,
bf16 and fp16, compile, and the fp16 loss scale under real autocast. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TINY_SYNTHETIC

pytestmark = pytest.mark.gpu

CUDA_RUN = [*TINY_SYNTHETIC, "trainer.epochs=1", "trainer.device=cuda", "report.baselines=false"]


def test_a_run_on_cuda_keeps_its_data_on_the_device(cli) -> None:
    result = cli(*CUDA_RUN, "balancer=pcgrad")
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["device"].startswith("cuda") and summary["dataset_info"]["loader"] == "memory"


@pytest.mark.parametrize("precision", ["bf16", "16"])
@pytest.mark.parametrize(
    "balancer", [["balancer=ew"], ["balancer=mgda"], ["balancer=upgrad", "balancer.rep_grad=true"]]
)
def test_mixed_precision_on_cuda(cli, precision: str, balancer: list[str]) -> None:
    result = cli(*CUDA_RUN, f"trainer.precision={precision}", *balancer)
    assert result.code == 0, result.err
    assert result.summary()["status"] == "completed"


def test_compile_on_cuda_with_per_task_gradients(cli) -> None:
    result = cli(*CUDA_RUN, "trainer.compile=true", "balancer=pcgrad")
    assert result.code == 0, result.err


@pytest.mark.parametrize("name", ["mgda", "pcgrad", "cagrad", "nash_mtl", "upgrad"])
def test_fp16_autocast_with_a_large_scale_points_where_fp32_does(name: str) -> None:
    from mtlrun.balancers import BALANCERS, StepContext
    from mtlrun.balancers.jacobian import loss_scaling
    from mtlrun.train.precision import scale_gradient

    def update(fp16: bool) -> torch.Tensor:
        torch.manual_seed(0)
        shared = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh()).cuda()
        heads = torch.nn.ModuleList(torch.nn.Linear(64, 1) for _ in range(3)).cuda()
        x, y = torch.randn(128, 32, device="cuda"), torch.randn(128, 3, device="cuda")
        with torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
            z = shared(x)
            losses = {f"t{i}": ((heads[i](z).squeeze(1).float() - y[:, i]) ** 2).mean() for i in range(3)}
        ctx = StepContext(
            model=torch.nn.ModuleList([shared, heads]),
            shared_params=list(shared.parameters()),
            task_params={f"t{i}": list(heads[i].parameters()) for i in range(3)},
            epoch=1,
            step=0,
        )
        balancer = BALANCERS.build(name, {}, tasks=["t0", "t1", "t2"]).cuda()
        scale = torch.tensor(2.0**16, device="cuda") if fp16 else None
        torch.manual_seed(1)
        with loss_scaling(scale):
            balancer.backward({t: scale_gradient(v, scale) for t, v in losses.items()}, ctx)
        grad = torch.cat([p.grad.reshape(-1) for p in shared.parameters()])
        return grad / (scale if scale is not None else 1.0)

    full, half = update(False), update(True)
    assert torch.nn.functional.cosine_similarity(full, half, dim=0) > 0.99
    assert torch.allclose(half.norm(), full.norm(), rtol=0.05)

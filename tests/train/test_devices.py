"""trainer.threads and trainer.compile."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlrun.errors import ConfigError
from mtlrun.train.devices import apply_threads, compile_model, cores, resolve_threads
from tests.conftest import TINY_SYNTHETIC


def test_auto_threads_share_the_cores_among_parallel_sweep_jobs() -> None:
    assert resolve_threads("auto") is None  # a single run keeps torch's own setting
    assert resolve_threads("auto", 1) is None
    assert resolve_threads("auto", 2) == max(1, cores() // 2)
    assert resolve_threads("auto", -1) == 1  # joblib's one job per core
    assert resolve_threads("auto", 10 * cores()) == 1
    assert resolve_threads("3") == 3 and resolve_threads(5) == 5
    with pytest.raises(ConfigError, match="trainer.threads=0"):
        resolve_threads("0")
    with pytest.raises(ConfigError, match="trainer.threads=many"):
        resolve_threads("many")


def test_apply_threads_sets_torch_intra_op_threads() -> None:
    previous = torch.get_num_threads()
    try:
        assert apply_threads("2") == 2 == torch.get_num_threads()
        assert apply_threads("auto") == 2  # left alone
    finally:
        torch.set_num_threads(previous)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 1), "b": nn.Linear(8, 1)})


def test_compile_keeps_parameter_names_and_state_dict_keys() -> None:
    model = _Toy()
    keys = list(model.state_dict())
    names = [n for n, _ in model.named_parameters()]
    assert compile_model(model) == ["encoder", "heads.a", "heads.b"]
    assert list(model.state_dict()) == keys and [n for n, _ in model.named_parameters()] == names
    assert model.encoder._compiled_call_impl is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    "balancer", [["balancer=pcgrad"], ["balancer=mgda", "balancer.rep_grad=true"], ["balancer=auto_lambda"]]
)
def test_compiled_model_trains_with_per_task_gradients(cli, balancer: list[str]) -> None:
    args = [*TINY_SYNTHETIC, "trainer.epochs=1", "trainer.compile=true", "report.baselines=false", *balancer]
    result = cli(*args)
    assert result.code == 0, result.err
    assert result.summary()["status"] == "completed"

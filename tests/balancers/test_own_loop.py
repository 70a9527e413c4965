"""The plain-loop side of the balancers: imports by class name, construction without tasks, the
keyword form of ``backward`` and its one-line errors (``mtlrun.balancers.own_loop`` and ``deferred``)."""

from __future__ import annotations

import inspect
import io

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch import nn

import mtlrun.balancers
from mtlrun.balancers import (
    BALANCERS,
    FAMO,
    MGDA,
    MOML,
    AutoLambda,
    Balancer,
    DynamicWeightAverage,
    EqualWeighting,
    FixedWeighting,
    GradNorm,
    MoDo,
    PCGrad,
    SmoothTchebycheff,
    StepContext,
    UncertaintyWeighting,
)
from mtlrun.balancers.deferred import build as build_pending
from mtlrun.config.schema import register_schema
from mtlrun.errors import ConfigError

TASKS = ["a", "b", "c"]


class Net(nn.Module):
    """A plain module: a shared layer and a head per task (no mtlrun model)."""

    def __init__(self, tasks=TASKS, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.shared = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(6, 1) for t in tasks})

    def forward(self, x):
        z = self.shared(x)
        return {t: h(z).squeeze(-1) for t, h in self.heads.items()}


def batch(seed: int = 1, tasks=TASKS):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 4, generator=g), {t: torch.randn(16, generator=g) for t in tasks}


def losses_of(model, data):
    x, y = data
    out = model(x)
    return {t: ((out[t] - y[t]) ** 2).mean() for t in out}


def grads(model):
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()]


# ---- imports by class name ----


def test_every_registered_balancer_is_exported_by_its_name():
    for name in BALANCERS.names():
        factory = BALANCERS.get(name)
        assert getattr(mtlrun.balancers, factory.__name__) is factory, name
        assert factory.__name__ in mtlrun.balancers.__all__, name
        if name != "torchjd":  # a function: the class it returns depends on the aggregator
            assert inspect.isclass(factory) and issubclass(factory, Balancer), name
    for exported in mtlrun.balancers.__all__:
        assert hasattr(mtlrun.balancers, exported)


def _cli_options(name: str) -> dict:
    register_schema()
    with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
        cfg = compose(config_name="config", overrides=[f"balancer={name}"])
    return OmegaConf.to_container(cfg.balancer)


@pytest.mark.parametrize("name", [n for n in BALANCERS.names() if n != "torchjd"])
def test_a_bare_constructor_is_the_balancer_the_cli_builds(name):
    from_cli = BALANCERS.build(name, _cli_options(name), tasks=TASKS)
    bare = BALANCERS.get(name)()
    build_pending(bare, TASKS, torch.device("cpu"))
    plain = (bool, int, float, str, type(None))
    assert {k: v for k, v in vars(bare).items() if isinstance(v, plain)} == {
        k: v for k, v in vars(from_cli).items() if isinstance(v, plain)
    }
    want, got = from_cli.state_dict(), bare.state_dict()
    assert want.keys() == got.keys()
    for key in want:
        if isinstance(want[key], torch.Tensor):
            assert torch.equal(got[key], want[key]), key
        else:
            assert got[key] == want[key], key


# ---- construction without tasks ----


def test_the_tasks_come_from_the_first_losses_in_their_order_and_are_then_fixed():
    model, balancer = Net(["b", "a"]), PCGrad()
    assert balancer.tasks == []
    info = balancer.backward(losses_of(model, batch(tasks=["b", "a"])), shared_params=model.shared.parameters())
    assert balancer.tasks == ["b", "a"] and info.weights.shape == (2,)
    other = Net(["a", "c"])
    with pytest.raises(ConfigError) as error:
        balancer.backward(losses_of(other, batch(tasks=["a", "c"])), shared_params=other.shared.parameters())
    message = str(error.value)
    assert "\n" not in message and "missing b" in message and "unexpected c" in message


def test_tasks_given_to_the_constructor_are_checked_as_well():
    model = Net()
    balancer = MGDA(tasks=["a", "b"])
    with pytest.raises(ConfigError, match="unexpected c"):
        balancer.backward(losses_of(model, batch()), shared_params=model.shared.parameters())


def test_an_unknown_option_fails_at_construction_and_a_bad_value_as_soon_as_it_is_known():
    with pytest.raises(TypeError, match=r"PCGrad\(\): got an unexpected keyword argument 'bogus'"):
        PCGrad(bogus=1)
    with pytest.raises(ConfigError, match="balancer.w_lr=-1 must be > 0"):
        FAMO(w_lr=-1)
    # a value that must agree with the tasks is checked when they are known
    famo = FAMO(min_losses=[0.0, 0.0])
    model = Net()
    with pytest.raises(ConfigError, match="min_losses has 2 values but the run has 3 tasks"):
        famo.backward(losses_of(model, batch()))
    fixed = FixedWeighting(weights={"a": 2.0, "b": 0.5})
    info = fixed.backward(losses_of(model, batch()))
    assert info.weights.tolist() == [2.0, 0.5, 1.0]


def test_options_and_flags_are_readable_before_the_first_step():
    auto = AutoLambda(upper_split="train")
    assert auto.batches_per_step == 2 and auto.upper_split == "train"
    assert "validation_batch" not in auto.context_needs()
    assert MGDA(rep_grad=True).needs_representation


def test_learnable_weights_exist_before_the_first_step_so_an_optimizer_holds_them():
    model, uw = Net(), UncertaintyWeighting()
    placeholder = next(uw.parameters())
    optimizer = torch.optim.SGD([*model.parameters(), *uw.parameters()], lr=0.1)
    for seed in range(3):
        optimizer.zero_grad()
        uw.backward(losses_of(model, batch(seed)))
        optimizer.step()
    assert uw.log_variances is placeholder and uw.log_variances.shape == (3,)
    assert bool((uw.log_variances != 0).all())  # trained by the user's optimizer


def test_conversions_before_the_first_step_are_replayed_on_the_built_balancer():
    model = Net().double()
    famo, uw = FAMO().double(), UncertaintyWeighting().double()
    x, y = batch()
    for balancer in (famo, uw):
        balancer.backward(losses_of(model, (x.double(), {t: v.double() for t, v in y.items()})))
    assert famo.logits.dtype == torch.float64 and uw.log_variances.dtype == torch.float64


def test_a_state_loaded_before_the_first_step_resumes_the_balancer():
    def step(balancer, model, seed):
        model.zero_grad()
        info = balancer.backward(losses_of(model, batch(seed)))
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        return info

    model, famo = Net(), FAMO()
    for seed in range(3):
        step(famo, model, seed)
    saved = io.BytesIO()
    torch.save(famo.state_dict(), saved)
    saved.seek(0)
    resumed = FAMO()
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    assert resumed.state_dict().keys() == famo.state_dict().keys()  # kept until the build
    copy_of_model = Net()
    copy_of_model.load_state_dict(model.state_dict())
    expected, got = step(famo, model, 3), step(resumed, copy_of_model, 3)
    torch.testing.assert_close(got.weights, expected.weights, rtol=0, atol=0)
    assert bool((expected.weights != 1 / 3).any())  # the logits had moved: the state mattered


# ---- the keyword form of backward ----


def test_generators_and_explicit_task_parameters_give_the_inferred_update():
    data = batch()
    inferred, given = Net(), Net()
    PCGrad().backward(losses_of(inferred, data), shared_params=inferred.shared.parameters())
    torch.manual_seed(0)
    PCGrad().backward(
        losses_of(given, data),
        shared_params=list(given.shared.parameters()),
        task_params={t: h.parameters() for t, h in given.heads.items()},
    )
    for a, b in zip(grads(inferred), grads(given)):
        assert a is not None and b is not None
    torch.manual_seed(0)
    fresh = Net()
    PCGrad().backward(losses_of(fresh, data), shared_params=fresh.shared.parameters())
    assert all(torch.equal(a, b) for a, b in zip(grads(fresh), grads(given)))


def test_the_context_form_is_unchanged_and_mixing_both_forms_is_refused():
    theta = nn.Parameter(torch.tensor([1.0, 2.0]))
    ctx = StepContext(model=nn.Module(), shared_params=[theta], task_params={}, epoch=1, step=0)
    ew = EqualWeighting(["a", "b"])
    ew.backward({"a": (theta**2).sum(), "b": (3 * theta).sum()}, ctx)
    assert theta.grad.tolist() == [5.0, 7.0]
    with pytest.raises(TypeError, match="a StepContext or keywords, not both"):
        ew.backward({"a": theta.sum(), "b": theta.sum()}, ctx, shared_params=[theta])
    with pytest.raises(TypeError, match="unexpected keyword argument 'shared'"):
        ew.backward({"a": theta.sum(), "b": theta.sum()}, shared=[theta])


def test_the_step_is_counted_by_the_balancer():
    model, mgda = Net(), MGDA(update_every=2)
    returned = []
    for seed in range(3):
        model.zero_grad()
        info = mgda.backward(losses_of(model, batch(seed)), shared_params=model.shared.parameters())
        returned.append(info.jacobian is not None)
    assert returned == [True, False, True]  # recompute, reuse the cached weights, recompute


def test_a_task_without_labels_is_given_by_name():
    model = Net()
    losses = losses_of(model, batch())
    losses["b"] = losses["b"] * 0.0
    info = PCGrad().backward(losses, shared_params=model.shared.parameters(), present={"b": False})
    assert float(info.weights[1]) == 0.0
    assert all(not bool(p.grad.any()) for p in model.heads["b"].parameters())
    with pytest.raises(ConfigError, match="present names task 'z'"):
        PCGrad().backward(losses_of(model, batch()), shared_params=model.shared.parameters(), present={"z": False})


def test_a_parameter_of_two_tasks_that_is_not_shared_is_refused_by_name():
    model = Net()
    with pytest.raises(ConfigError) as error:
        MGDA().backward(losses_of(model, batch()), shared_params=model.shared[0].bias, model=model)
    message = str(error.value)
    assert "parameter shared.0.weight" in message and "shared_params" in message and "\n" not in message


def rep_grad_model():
    model = Net()
    x, y = batch()
    z = model.shared(x)
    outputs = {t: h(z).squeeze(-1) for t, h in model.heads.items()}
    return model, z, {t: ((outputs[t] - y[t]) ** 2).mean() for t in outputs}


@pytest.mark.parametrize(
    ("make", "given", "keyword"),
    [
        (lambda: DynamicWeightAverage(), {}, "epoch"),
        (lambda: SmoothTchebycheff(), {}, "epoch"),
        (lambda: GradNorm(), {}, "model"),
        (lambda: FAMO(xi_update="same_batch"), {"batch": "given"}, "compute_losses"),
        (lambda: AutoLambda(), {"model": "given", "lr": 0.1, "functional_losses": "given"}, "validation_batch"),
        (lambda: MOML(upper_split="train"), {"model": "given", "functional_losses": "given"}, "extra_batches"),
        (lambda: MoDo(), {"compute_losses": "given", "extra_batches": ["one"]}, "extra_batches"),
        (lambda: MGDA(rep_grad=True), {}, "representation"),
        (lambda: PCGrad(), {"shared_params": None}, "shared_params"),
    ],
)
def test_a_missing_keyword_is_a_one_line_error_naming_it(make, given, keyword):
    model = Net()
    keywords = {"shared_params": model.shared.parameters(), **given}
    with pytest.raises(ConfigError) as error:
        make().backward(losses_of(model, batch()), **keywords)
    message = str(error.value)
    assert f"needs {keyword}=" in message and "\n" not in message


def test_the_representation_must_carry_its_graph():
    model, z, losses = rep_grad_model()
    with pytest.raises(ConfigError, match="not a detached copy"):
        MGDA(rep_grad=True).backward(losses, shared_params=model.shared.parameters(), representation=z.detach())
    info = MGDA(rep_grad=True).backward(losses, shared_params=model.shared.parameters(), representation=z)
    assert info.jacobian is None and all(p.grad is not None for p in model.parameters())

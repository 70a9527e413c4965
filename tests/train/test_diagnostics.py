"""Training diagnostics: gradient cosines and norms, TAG affinity with the optimizer's lookahead."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import Tensor, nn

from mtlrun.balancers.base import GradientAggregator, StepContext
from mtlrun.balancers.jacobian import task_jacobian
from mtlrun.balancers.weighting import EqualWeighting
from mtlrun.data.tasks import binary_task, classification_task, regression_task
from mtlrun.models.base import MultiTaskModel
from mtlrun.models.encoders import EncoderSpec
from mtlrun.train.diagnostics import Diagnostics, lookahead
from tests.conftest import TINY

#: end-to-end runs without the single-task baselines of the transfer report (not under test here)
FAST = [*TINY, "report.baselines=false"]

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


class LinearTasks(nn.Module):
    """Shared vector theta; task j outputs A_j theta (no task-specific parameters)."""

    def __init__(self, matrices: dict[str, Tensor], theta: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())
        self.matrices = matrices

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {t: a @ self.theta for t, a in self.matrices.items()}


def half_sq(output: Tensor, target: Tensor) -> Tensor:
    return 0.5 * ((output - target) ** 2).sum()


class SumAggregator(GradientAggregator):
    """Weights of one per task: the same update as equal weighting, through the Jacobian."""

    output = "weights"

    def weights(self, jacobian: Tensor, ctx: StepContext) -> Tensor:
        return torch.ones(jacobian.shape[0], dtype=jacobian.dtype, device=jacobian.device)


class OwnBackward(SumAggregator):
    """A balancer that declares it returns no Jacobian: diagnostics compute their own."""

    def returns_jacobian(self, step: int) -> bool:
        return False

    def backward(self, losses, ctx):
        info = super().backward(losses, ctx)
        info.jacobian = None
        return info


def tiny_tasks():
    return [classification_task("a", 3), regression_task("b"), binary_task("c")]


def small_model(seed: int = 0, encoder: str = "cnn") -> MultiTaskModel:
    from mtlrun.models import ARCHS

    torch.manual_seed(seed)
    options = {"channels": [4, 6], "hidden": 8} if encoder == "cnn" else {"hidden": [12, 8], "dropout": 0.3}
    spec = EncoderSpec(name=encoder, input_shape=(1, 10, 16), options=options)
    return ARCHS.build("hps", {}, encoder=spec, tasks=tiny_tasks())


def small_batch(n: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 10, 16, generator=g)
    targets = {
        "a": torch.randint(0, 3, (n,), generator=g),
        "b": torch.randn(n, generator=g),
        "c": torch.randint(0, 2, (n,), generator=g).float(),
    }
    return x, targets


def loss_fns():
    return {t.name: t.loss for t in tiny_tasks()}


def model_losses(model, batch):
    outputs = model(batch[0])
    return {t: fn(outputs[t], batch[1][t]) for t, fn in loss_fns().items()}


def shared_of(model: MultiTaskModel) -> list[nn.Parameter]:
    return [p for p in model.shared_parameters() if p.requires_grad]


def context(model: MultiTaskModel, batch, step: int = 0) -> StepContext:
    tasks = model.task_names
    return StepContext(
        model=model,
        shared_params=shared_of(model),
        task_params={t: model.task_parameters(t) for t in tasks},
        epoch=1,
        step=step,
        batch=batch,
    )


def warm_up(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int = 3) -> None:
    """A few real steps with random gradients so the optimizer has state."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=g)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------------------------
# lookahead = the optimizer's own step
# --------------------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.01),
    "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95)),
    "adam_l2_amsgrad": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("warm", [0, 3])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_lookahead_equals_a_real_optimizer_step_on_a_copy(name, warm):
    model = small_model()
    optimizer = OPTIMIZERS[name](model.parameters())
    warm_up(model, optimizer, warm)
    state_before = copy.deepcopy(optimizer.state_dict())
    shared = shared_of(model)
    g = torch.Generator().manual_seed(7)
    grads = [torch.randn(p.shape, generator=g) for p in shared]

    predicted = lookahead(optimizer, shared, [gr.unsqueeze(0) for gr in grads])

    twin_model, twin_opt = copy.deepcopy((model, optimizer))
    for p in twin_model.parameters():
        p.grad = None
    for p, gr in zip(shared_of(twin_model), grads):
        p.grad = gr.clone()
    twin_opt.step()
    for new, real in zip(predicted, shared_of(twin_model)):
        torch.testing.assert_close(new[0], real.detach(), rtol=1e-5, atol=1e-6)
    # the lookahead read the optimizer's state without changing it
    after = optimizer.state_dict()
    assert after["param_groups"] == state_before["param_groups"]
    assert after["state"].keys() == state_before["state"].keys()
    for key, state in state_before["state"].items():
        for field, value in state.items():
            torch.testing.assert_close(after["state"][key][field], value, rtol=0, atol=0)


def test_lookahead_rows_are_independent_candidates():
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    warm_up(model, optimizer, 2)
    shared = shared_of(model)
    g = torch.Generator().manual_seed(0)
    stacked = [torch.randn(3, *p.shape, generator=g) for p in shared]
    together = lookahead(optimizer, shared, stacked)
    for k in range(3):
        alone = lookahead(optimizer, shared, [s[k : k + 1] for s in stacked])
        for a, b in zip(together, alone):
            torch.testing.assert_close(a[k], b[0])


def test_unsupported_optimizer_skips_affinity_with_a_reason():
    model = small_model()
    diag = Diagnostics(
        model.task_names, model, shared_of(model), loss_fns(), torch.optim.RMSprop(model.parameters()), every=1
    )
    assert not diag.affinity and "RMSprop" in diag.affinity_reason
    batch = small_batch()
    losses = model_losses(model, batch)
    jac = diag.jacobian_unless_provided(losses, context(model, batch), EqualWeighting(model.task_names))
    diag.observe(0, 1, batch, jac, losses)
    result = diag.result()
    assert result["affinity"] is None and "RMSprop" in result["affinity_reason"]
    assert result["cosine"] is not None


# --------------------------------------------------------------------------------------------
# affinity Z(i -> j)
# --------------------------------------------------------------------------------------------


def observe_once(model, optimizer, batch, tasks, fns, step: int = 0) -> dict:
    diag = Diagnostics(tasks, model, [p for p in model.parameters()], fns, optimizer, every=1)
    outputs = model(batch[0])
    losses = {t: fns[t](outputs[t], batch[1][t]) for t in tasks}
    ctx = StepContext(
        model=model,
        shared_params=list(model.parameters()),
        task_params={t: [] for t in tasks},
        epoch=1,
        step=step,
        batch=batch,
    )
    jac = diag.jacobian_unless_provided(losses, ctx, EqualWeighting(tasks))
    diag.observe(step, 1, batch, jac, losses)
    return diag.result()


@pytest.mark.parametrize("scale,lr", [(1.0, 0.3), (2.0, 0.1)])
def test_affinity_of_orthogonal_linear_tasks_with_sgd_matches_the_closed_form(scale, lr):
    # L_j = 1/2 |A_j theta - b_j|^2, rows of A_a and A_b orthogonal, A_a A_a^T = scale^2 I.
    # A step on a: theta' = theta - lr A_a^T r_a, so A_b theta' = A_b theta  -> Z(a->b) = 0,
    # and r_a' = (1 - lr scale^2) r_a -> Z(a->a) = 1 - (1 - lr scale^2)^2 (likewise for b).
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    q = q.float()
    matrices = {"a": scale * q[:2], "b": scale * q[2:]}
    model = LinearTasks(matrices, torch.tensor([0.3, -1.0, 0.5, 2.0]))
    batch = (torch.zeros(1), {"a": torch.tensor([1.0, -2.0]), "b": torch.tensor([0.5, 0.7])})
    result = observe_once(
        model, torch.optim.SGD(model.parameters(), lr=lr), batch, ["a", "b"], {"a": half_sq, "b": half_sq}
    )
    z = torch.tensor(result["affinity"]["matrix"])
    expected_self = 1 - (1 - lr * scale**2) ** 2
    torch.testing.assert_close(z, torch.tensor([[expected_self, 0.0], [0.0, expected_self]]), atol=2e-5, rtol=0)
    # and the cosines of orthogonal gradients are 0
    assert abs(result["cosine"]["pairs"]["a|b"]["mean"]) < 1e-6


def test_affinity_of_linear_tasks_with_overlapping_rows_matches_the_closed_form():
    # general SGD case: Z(i->j) = 1 - |r_j - lr A_j A_i^T r_i|^2 / |r_j|^2
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(2, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)
    theta = torch.randn(5, generator=g, dtype=torch.float64)
    ta, tb = torch.randn(2, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    lr = 0.05
    model = LinearTasks({"a": a, "b": b}, theta).double()
    result = observe_once(
        model,
        torch.optim.SGD(model.parameters(), lr=lr),
        (torch.zeros(1), {"a": ta, "b": tb}),
        ["a", "b"],
        {"a": half_sq, "b": half_sq},
    )
    mats, res = {"a": a, "b": b}, {"a": a @ theta - ta, "b": b @ theta - tb}
    for i, src in enumerate("ab"):
        for j, dst in enumerate("ab"):
            moved = res[dst] - lr * mats[dst] @ mats[src].T @ res[src]
            expected = 1 - (moved @ moved) / (res[dst] @ res[dst])
            assert result["affinity"]["matrix"][i][j] == pytest.approx(float(expected), abs=1e-6)


def test_affinity_of_identical_tasks_is_the_same_in_every_direction():
    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))

        def forward(self, x):
            h = self.body(x)
            return {"a": h, "b": h}

    model = Twin()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(1))
    y = torch.randn(10, 2, generator=torch.Generator().manual_seed(2))
    mse = nn.functional.mse_loss
    result = observe_once(model, optimizer, (x, {"a": y, "b": y}), ["a", "b"], {"a": mse, "b": mse})
    z = result["affinity"]["matrix"]
    assert z[0][1] == pytest.approx(z[0][0], abs=1e-7)
    assert z[1][0] == pytest.approx(z[1][1], abs=1e-7)
    assert z[0][0] > 0  # a small first Adam step on a task lowers its own loss
    assert result["cosine"]["pairs"]["a|b"] == {"mean": 1.0, "std": 0.0, "frac_negative": 0.0}


@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd_nesterov"])
def test_affinity_equals_losses_after_a_real_step_on_one_task(opt):
    """Z(i->j) from the lookahead = 1 - L_j / L_j(before) after optimizer.step() on a deep copy
    with task i's shared gradient only (heads untouched), on a CNN with batch norm."""
    model = small_model()
    optimizer = OPTIMIZERS[opt](model.parameters())
    warm_up(model, optimizer, 3)
    batch = small_batch()
    tasks = model.task_names
    diag = Diagnostics(tasks, model, shared_of(model), loss_fns(), optimizer, every=1)
    losses = model_losses(model, batch)
    jac = diag.jacobian_unless_provided(losses, context(model, batch), EqualWeighting(tasks))
    diag.observe(0, 1, batch, jac, losses)
    z = torch.tensor(diag.result()["affinity"]["matrix"], dtype=torch.float64)

    before = torch.stack([losses[t].detach() for t in tasks])
    for i, source in enumerate(tasks):
        twin_model, twin_opt = copy.deepcopy((model, optimizer))
        twin_opt.zero_grad(set_to_none=True)
        grads = torch.autograd.grad(model_losses(twin_model, batch)[source], shared_of(twin_model), allow_unused=True)
        for p, gr in zip(shared_of(twin_model), grads):
            p.grad = torch.zeros_like(p) if gr is None else gr
        twin_opt.step()
        after = model_losses(twin_model, batch)
        expected = 1 - torch.stack([after[t].detach() for t in tasks]) / before
        torch.testing.assert_close(z[i], expected.double(), rtol=1e-4, atol=1e-5)


def test_observing_changes_nothing_the_training_depends_on():
    model = small_model(encoder="mlp")  # dropout: forwards draw random masks
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    warm_up(model, optimizer, 2)
    batch = small_batch()
    tasks = model.task_names
    diag = Diagnostics(tasks, model, shared_of(model), loss_fns(), optimizer, every=1)
    torch.manual_seed(123)
    losses = model_losses(model, batch)
    rng = torch.get_rng_state()
    params = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = copy.deepcopy(optimizer.state_dict())
    jac = diag.jacobian_unless_provided(losses, context(model, batch), EqualWeighting(tasks))
    diag.observe(0, 1, batch, jac, losses)
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, params[k]), k
    for key, state in opt_state["state"].items():
        for field, value in state.items():
            assert torch.equal(optimizer.state_dict()["state"][key][field], value)
    assert all(p.grad is None for p in shared_of(model))  # J is taken without filling .grad
    # the balancer's backward still works on the retained graph
    EqualWeighting(tasks).backward(losses, context(model, batch))
    assert all(p.grad is not None for p in shared_of(model))


def test_batch_norm_statistics_are_untouched():
    model = small_model(encoder="cnn")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batch = small_batch()
    tasks = model.task_names
    diag = Diagnostics(tasks, model, shared_of(model), loss_fns(), optimizer, every=1)
    losses = model_losses(model, batch)  # the training forward updates the statistics once
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    jac = diag.jacobian_unless_provided(losses, context(model, batch), EqualWeighting(tasks))
    diag.observe(0, 1, batch, jac, losses)
    assert diag.result()["steps_sampled"] == 1
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k]), k


# --------------------------------------------------------------------------------------------
# cosines and norms
# --------------------------------------------------------------------------------------------


def test_cosines_norms_and_fractions_for_known_jacobians():
    model = small_model()
    diag = Diagnostics(
        ["a", "b", "c"],
        model,
        shared_of(model),
        loss_fns(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        every=1,
        affinity=False,
    )
    j1 = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    j2 = torch.tensor([[0.0, 3.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    diag.observe(0, 1, small_batch(), j1)
    diag.observe(1, 2, small_batch(), j2)
    out = diag.result()
    r = 1 / math.sqrt(2)
    # step 1: cos(a,b)=1/sqrt2, cos(a,c)=-1, cos(b,c)=-1/sqrt2; step 2: 1, 0, 0
    c1 = [[1, r, -1], [r, 1, -r], [-1, -r, 1]]
    c2 = [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    mean = [[(x + y) / 2 for x, y in zip(u, v)] for u, v in zip(c1, c2)]
    assert out["steps_sampled"] == 2 and out["every"] == 1 and out["tasks"] == ["a", "b", "c"]
    close = lambda got, want: torch.testing.assert_close(  # noqa: E731
        torch.tensor(got, dtype=torch.float64), torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-6
    )
    close(out["cosine"]["matrix"], mean)
    assert [e["epoch"] for e in out["cosine"]["by_epoch"]] == [1, 2]
    close(out["cosine"]["by_epoch"][0]["matrix"], c1)
    close(out["cosine"]["by_epoch"][1]["matrix"], c2)
    pairs = out["cosine"]["pairs"]
    assert list(pairs) == ["a|b", "a|c", "b|c"]
    assert pairs["a|b"] == pytest.approx({"mean": (r + 1) / 2, "std": (1 - r) / 2, "frac_negative": 0.0}, abs=1e-6)
    assert pairs["a|c"] == pytest.approx({"mean": -0.5, "std": 0.5, "frac_negative": 0.5}, abs=1e-6)
    assert pairs["b|c"] == pytest.approx({"mean": -r / 2, "std": r / 2, "frac_negative": 0.5}, abs=1e-6)
    # norms: step 1 (1, sqrt2, 1), step 2 (3, 1, 2)
    s2 = math.sqrt(2)
    norms = out["grad_norm"]
    assert norms["mean"] == pytest.approx({"a": 2.0, "b": (s2 + 1) / 2, "c": 1.5}, abs=1e-6)
    m1, m2 = (2 + s2) / 3, 2.0
    assert norms["ratio_to_mean"] == pytest.approx(
        {"a": (1 / m1 + 3 / m2) / 2, "b": (s2 / m1 + 1 / m2) / 2, "c": (1 / m1 + 2 / m2) / 2}, abs=1e-6
    )
    assert norms["pair_ratio"] == pytest.approx(
        {"a|b": (s2 + 3) / 2, "a|c": (1 + 1.5) / 2, "b|c": (s2 + 2) / 2}, abs=1e-6
    )
    assert out["affinity"] is None and out["affinity_reason"] == "diagnostics.affinity=false"


def test_a_step_without_a_jacobian_is_skipped_and_counted():
    model = small_model()
    diag = Diagnostics(
        ["a", "b", "c"],
        model,
        shared_of(model),
        loss_fns(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        every=1,
        affinity=False,
    )
    diag.observe(0, 1, small_batch(), None)
    out = diag.result()
    assert out["steps_sampled"] == 0 and out["steps_skipped"] == 1 and out["cosine"] is None


def test_sampling_interval():
    model = small_model()
    diag = Diagnostics(
        ["a", "b", "c"], model, shared_of(model), loss_fns(), torch.optim.SGD(model.parameters(), lr=0.1), every=4
    )
    assert [s for s in range(12) if diag.wants(s)] == [0, 4, 8]


def test_reusing_the_balancers_jacobian_gives_the_same_numbers_as_recomputing():
    tasks = ["a", "b", "c"]
    batch = small_batch()
    results, grads = {}, {}
    for name, balancer in [
        ("reused", SumAggregator(tasks)),
        ("own", OwnBackward(tasks)),
        ("ew", EqualWeighting(tasks)),
    ]:
        model = small_model(seed=5)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        diag = Diagnostics(tasks, model, shared_of(model), loss_fns(), optimizer, every=1)
        losses = model_losses(model, batch)
        ctx = context(model, batch)
        own = diag.jacobian_unless_provided(losses, ctx, balancer)
        info = balancer.backward(losses, ctx)
        if name == "reused":
            assert own is None and info.jacobian is not None  # nothing recomputed
        else:
            assert own is not None
        diag.observe(0, 1, batch, info.jacobian if info.jacobian is not None else own, losses)
        results[name] = diag.result()
        grads[name] = torch.cat([p.grad.reshape(-1) for p in shared_of(model)])
    for name in ("own", "ew"):
        torch.testing.assert_close(grads[name], grads["reused"], rtol=1e-5, atol=1e-6)
        for key in ("cosine", "affinity"):
            torch.testing.assert_close(
                torch.tensor(results[name][key]["matrix"]),
                torch.tensor(results["reused"][key]["matrix"]),
                rtol=1e-5,
                atol=1e-6,
            )
        for key, values in results["reused"]["grad_norm"].items():
            assert results[name]["grad_norm"][key] == pytest.approx(values, rel=1e-5)


def test_scheduled_losses_get_their_own_unscaled_jacobian():
    """A task schedule scales the losses the balancer sees; diagnostics keep the raw task gradients."""
    tasks = ["a", "b", "c"]
    batch = small_batch()
    model = small_model(seed=3)
    diag = Diagnostics(tasks, model, shared_of(model), loss_fns(), torch.optim.Adam(model.parameters()), every=1)
    losses = model_losses(model, batch)
    ctx = context(model, batch)
    balancer = SumAggregator(tasks)
    assert diag.jacobian_unless_provided(losses, ctx, balancer, {"a": 1.0, "b": 1.0, "c": 1.0}) is None
    own = diag.jacobian_unless_provided(losses, ctx, balancer, {"a": 1.0, "b": 0.5, "c": 0.0})
    raw = task_jacobian(torch.stack([losses[t] for t in tasks]), shared_of(model), retain_graph=True)
    torch.testing.assert_close(own, raw)


def test_returns_jacobian_follows_update_every_and_rep_grad():
    tasks = ["a", "b"]
    assert SumAggregator(tasks).returns_jacobian(0)
    assert not SumAggregator(tasks, rep_grad=True).returns_jacobian(0)
    assert not EqualWeighting(tasks).returns_jacobian(0)
    cached = SumAggregator(tasks, update_every=3)
    assert cached.returns_jacobian(1)  # no weights cached yet
    cached.cached_weights = torch.ones(2)
    assert cached.returns_jacobian(3) and not cached.returns_jacobian(4)


def test_jacobian_through_a_split_forward_equals_the_direct_one():
    """With rep_grad the losses reach the encoder only via the representation; J is composed."""
    tasks = ["a", "b", "c"]
    batch = small_batch()
    model = small_model(seed=2)
    direct = task_jacobian(torch.stack([model_losses(model, batch)[t] for t in tasks]), shared_of(model))
    rep = model.encode(batch[0])
    rep_in = rep.detach().requires_grad_(True)
    outputs = model.decode(rep_in)
    losses = {t: loss_fns()[t](outputs[t], batch[1][t]) for t in tasks}
    ctx = context(model, batch)
    ctx.representation, ctx.representation_input = rep, rep_in
    balancer = SumAggregator(tasks, rep_grad=True)
    diag = Diagnostics(tasks, model, shared_of(model), loss_fns(), torch.optim.Adam(model.parameters()), every=1)
    composed = diag.jacobian_unless_provided(losses, ctx, balancer)
    torch.testing.assert_close(composed, direct, rtol=1e-5, atol=1e-6)
    balancer.backward(losses, ctx)  # graph still usable by the balancer
    assert all(p.grad is not None for p in shared_of(model))


# --------------------------------------------------------------------------------------------
# through the real CLI
# --------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_cli_writes_diagnostics_and_plots_without_changing_training(cli):
    on = cli(*FAST, "diagnostics.every=5")
    assert on.code == 0, on.err
    folder = on.run_dirs()[-1]
    summary_on = on.summary()
    data = json.loads((folder / "diagnostics.json").read_text())
    assert list(data) == ["tasks", "every", "steps_sampled", "cosine", "grad_norm", "affinity", "overhead_s"]
    tasks = ["left", "right", "sum", "parity"]
    steps = summary_on["timings"]["steps"]
    assert data["tasks"] == tasks and data["every"] == 5 and data["steps_sampled"] == len(range(0, steps, 5))
    pairs = [f"{a}|{b}" for i, a in enumerate(tasks) for b in tasks[i + 1 :]]
    cosine = data["cosine"]
    assert set(cosine) == {"matrix", "pairs", "by_epoch"}
    assert list(cosine["pairs"]) == pairs
    assert all(set(v) == {"mean", "std", "frac_negative"} for v in cosine["pairs"].values())
    assert all(-1 <= v["mean"] <= 1 and 0 <= v["frac_negative"] <= 1 for v in cosine["pairs"].values())
    assert [e["epoch"] for e in cosine["by_epoch"]] == [1, 2]
    for matrix in [cosine["matrix"], data["affinity"]["matrix"], *(e["matrix"] for e in cosine["by_epoch"])]:
        assert len(matrix) == 4 and all(len(row) == 4 for row in matrix)
    assert [cosine["matrix"][i][i] for i in range(4)] == [1.0] * 4
    assert set(data["grad_norm"]) == {"mean", "ratio_to_mean", "pair_ratio"}
    assert list(data["grad_norm"]["mean"]) == tasks and list(data["grad_norm"]["pair_ratio"]) == pairs
    assert sum(data["grad_norm"]["ratio_to_mean"].values()) == pytest.approx(4.0, rel=1e-4)
    assert [e["epoch"] for e in data["affinity"]["by_epoch"]] == [1, 2]
    assert data["overhead_s"] > 0
    expected = {"learning_curves.png", "cosine.png", "cosine_evolution.png", "affinity.png"}
    pngs = {p.name: p.read_bytes() for p in (folder / "plots").glob("*.png")}
    assert expected <= set(pngs) and "weights.png" not in pngs  # ew's weights never change: no flat-line plot
    for name, content in pngs.items():
        assert content.startswith(PNG_SIGNATURE) and len(content) > 5000, name

    off = cli(*FAST, "diagnostics.every=0")
    assert off.code == 0, off.err
    folder_off = off.run_dirs()[-1]
    assert folder_off != folder and not (folder_off / "diagnostics.json").exists()
    assert off.summary()["metrics"] == summary_on["metrics"]  # diagnostics do not change training


def test_cli_architecture_without_shared_parameters_says_why(cli):
    result = cli(*FAST, "arch=single_task", "tasks.names=[left,parity]", "diagnostics.every=5")
    assert result.code == 0, result.err
    data = json.loads((result.run_dirs()[-1] / "diagnostics.json").read_text())
    assert data["steps_sampled"] == 0 and data["cosine"] is None and data["affinity"] is None
    assert "no shared parameters" in data["reason"]
    assert not (result.run_dirs()[-1] / "plots" / "cosine.png").exists()


def test_cli_rejects_a_negative_interval(cli):
    result = cli(*FAST, "diagnostics.every=-1")
    assert result.code == 2
    assert "diagnostics.every=-1" in result.err

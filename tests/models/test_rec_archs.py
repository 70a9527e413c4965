"""ESMM, AITM and the shared or per-task embedding tables of the recommendation architectures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlrun.data.tasks import binary_task, regression_task
from mtlrun.errors import ConfigError
from mtlrun.models import ARCHS, EncoderSpec
from mtlrun.models.arch.esmm import product_logit
from tests.models.helpers import build_funnel, funnel_batch, funnel_losses

#: a table row: 2 numeric columns, 2 categorical fields (5 and 7 ids), one multi-valued field of 3 slots
CONTEXT = {"numeric": 2, "cardinalities": [5, 7], "bags": [[6, 3]]}
WIDTH = 2 + 2 + 3


def tabular_spec(**options) -> EncoderSpec:
    return EncoderSpec("tabular", (WIDTH,), {"hidden": [8, 6], **options}, CONTEXT)


def rows(n: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    numeric = torch.randn(n, 2, generator=g)
    fields = torch.stack([torch.randint(0, 5, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)], 1)
    bag = torch.randint(0, 6, (n, 3), generator=g)
    return torch.cat([numeric, fields.float(), bag.float()], dim=1)


def click_tasks():
    return [binary_task("click"), binary_task("buy")]


def build(arch: str, **options):
    torch.manual_seed(0)
    return ARCHS.build(arch, options, encoder=tabular_spec(), tasks=click_tasks())


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


# -- ESMM ----------------------------------------------------------------------------------------


def test_product_logit_is_the_logit_of_the_product_and_stays_finite():
    a = torch.tensor([-30.0, -2.0, 0.0, 3.0, 40.0, 40.0])
    b = torch.tensor([5.0, 1.0, 0.0, -4.0, 40.0, -60.0])
    got = product_logit(a, b)
    p = torch.sigmoid(a.double()) * torch.sigmoid(b.double())
    assert torch.isfinite(got).all()
    torch.testing.assert_close(torch.sigmoid(got.double()), p, rtol=1e-5, atol=1e-12)


def test_esmm_conversion_output_is_pctr_times_pcvr_and_given_output_is_pcvr():
    model = build_funnel("esmm").eval()
    x, _ = funnel_batch()
    out = model(x)
    own = model.logits(x)
    p_ctr, p_cvr = torch.sigmoid(own["click"]), torch.sigmoid(own["buy"])
    torch.testing.assert_close(torch.sigmoid(out["buy"]), p_ctr * p_cvr)
    torch.testing.assert_close(out["click"], own["click"])
    torch.testing.assert_close(model.given_output("buy", x, out), own["buy"])
    torch.testing.assert_close(model.given_output("click", x, out), out["click"])


def test_esmm_trains_the_cvr_tower_on_unclicked_impressions_too():
    """The entire-space property: on a batch without one click the CTCVR loss still moves the CVR
    tower (a CVR model fitted on clicked rows alone would get no gradient at all)."""
    model = build_funnel("esmm")
    x, targets = funnel_batch()
    targets = {**targets, "click": torch.zeros_like(targets["click"]), "buy": torch.zeros_like(targets["buy"])}
    loss = funnel_losses(model, x, targets)["buy"]
    tower = list(model.towers["buy"].parameters())
    grads = torch.autograd.grad(loss, tower, retain_graph=True)
    assert all(g.abs().sum() > 0 for g in grads)
    # and the conversion loss reaches the CTR tower: it is shared, the click task owns nothing
    ctr = list(model.towers["click"].parameters())
    assert all(g.abs().sum() > 0 for g in torch.autograd.grad(loss, ctr))
    assert model.task_parameters("click") == []


def test_esmm_picks_the_first_two_binary_tasks_and_names_valid_ones():
    model = build_funnel("esmm")
    assert (model.ctr_task, model.cvr_task) == ("click", "buy")
    assert build_funnel("esmm", cvr_task="click").ctr_task == "buy"
    with pytest.raises(ConfigError, match=r"arch.cvr_task=b .*buy, click"):
        build_funnel("esmm", cvr_task="b")
    with pytest.raises(ConfigError, match="arch.cvr_task=click is already"):
        build_funnel("esmm", ctr_task="click", cvr_task="click")
    with pytest.raises(ConfigError, match="needs 2 binary tasks"):
        ARCHS.build("esmm", {}, encoder=tabular_spec(), tasks=[binary_task("click"), regression_task("r")])


# -- AITM ----------------------------------------------------------------------------------------


def test_aitm_information_flows_forward_only():
    model = build_funnel("aitm").eval()
    x, _ = funnel_batch()
    out = model(x)
    click_tower, buy_tower = (list(model.towers[t].parameters()) for t in ("click", "buy"))
    g_click = torch.autograd.grad(out["click"].sum(), buy_tower, allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in g_click), "the click output reads the conversion tower"
    g_buy = torch.autograd.grad(out["buy"].sum(), click_tower, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in g_buy), "no information reaches the conversion task"
    weights = model.attention(x)["buy"]
    assert weights.shape == (x.shape[0], 2)
    torch.testing.assert_close(weights.sum(1), torch.ones(x.shape[0]))


def test_aitm_calibrator_penalises_a_later_step_likelier_than_the_one_before():
    model = build_funnel("aitm", calibration=0.6)
    out = {"click": torch.tensor([[0.0], [2.0], [-1.0]]), "buy": torch.tensor([[1.0], [0.0], [-1.0]])}
    p_click, p_buy = torch.sigmoid(out["click"]).flatten(), torch.sigmoid(out["buy"]).flatten()
    expected = torch.relu(p_buy - p_click).mean()  # only the first row breaks the funnel
    torch.testing.assert_close(model.calibration_loss(out), expected)
    assert expected > 0

    x, targets = funnel_batch()
    task_losses = funnel_losses(model, x, targets)  # a training forward: the calibrator sees this batch
    extra = model.extra_losses()
    assert set(extra) == {"aitm_calibration"}
    sum(task_losses.values()).backward()  # separate graphs: the two backward passes do not collide
    extra["aitm_calibration"].backward()
    assert model.extra_losses() == {}  # consumed with its batch
    model.eval()
    model(x)
    assert model.extra_losses() == {}  # evaluation forwards are never penalised
    silent = build_funnel("aitm", calibration=0.0)
    funnel_losses(silent, x, targets)
    assert silent.extra_losses() == {}


def test_aitm_tasks_order_is_checked():
    assert build_funnel("aitm", tasks_order=["buy", "click"]).order == ["buy", "click"]
    with pytest.raises(ConfigError, match=r"arch.tasks_order=b .*buy, click"):
        build_funnel("aitm", tasks_order=["click", "b"])
    with pytest.raises(ConfigError, match="at least two binary tasks"):
        build_funnel("aitm", tasks_order=["click"])
    with pytest.raises(ConfigError, match="arch.calibration=-1"):
        build_funnel("aitm", calibration=-1.0)


# -- embedding tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["mmoe", "cgc", "ple", "hps", "shared_bottom", "esmm", "aitm"])
def test_one_embedding_table_per_field_shared_by_every_network(arch):
    model = build(arch)
    assert count(model, nn.Embedding) == 2 and count(model, nn.EmbeddingBag) == 1
    out = model(rows())
    assert set(out) == {"click", "buy"} and all(v.shape == (16, 1) for v in out.values())
    x = rows()
    losses = {t: nn.functional.binary_cross_entropy_with_logits(v.squeeze(1), torch.ones(16)) for t, v in out.items()}
    tables = [m.weight for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    for t, loss in losses.items():
        grads = torch.autograd.grad(loss, tables, retain_graph=True)
        assert all(g.abs().sum() > 0 for g in grads), f"task {t} does not train the shared tables"
    shared = {id(p) for p in model.shared_parameters()}
    assert all(id(w) in shared for w in tables)
    del x


def test_mmoe_gates_read_the_embedded_row():
    model = build("mmoe", num_experts=3)
    embedded = model.inputs.in_shape[0]
    assert embedded > WIDTH  # the embeddings, not the raw indices
    assert all(gate.linear.in_features == embedded for gate in model.level.task_gates.values())
    per_expert = build("mmoe", num_experts=3, embeddings="per_expert")
    assert count(per_expert, nn.Embedding) == 2 * 3  # every expert copies the encoder with its tables
    assert all(gate.linear.in_features == WIDTH for gate in per_expert.level.task_gates.values())


@pytest.mark.parametrize("arch", ["mmoe", "hps", "esmm", "aitm"])
def test_per_task_tables_are_trained_by_their_task_alone(arch):
    """STEM's task-specific embeddings: no task reads another's tables (in ESMM and AITM the
    conversion task reads the click task's through pCTR and the transferred information, by design)."""
    model = build(arch, embeddings="per_task")
    assert count(model, nn.Embedding) == 2 * 2
    out = model(rows())
    for task in ("click", "buy") if arch in ("mmoe", "hps") else ("click",):
        others = [p for t, m in model.inputs.per_task.items() if t != task for p in m.parameters()]
        grads = torch.autograd.grad(out[task].sum(), others, allow_unused=True, retain_graph=True)
        assert all(g is None or g.abs().sum() == 0 for g in grads), f"{task} reads another task's tables"
    owned = {id(p) for p in model.task_parameters("buy")}
    assert all(id(p) in owned for p in model.inputs.per_task["buy"].parameters())
    if arch == "hps":
        assert not model.has_representation


def test_per_task_tables_need_an_encoder_with_tables():
    spec = EncoderSpec("mlp", (WIDTH,), {"hidden": [8]})
    with pytest.raises(ConfigError, match="arch.embeddings=per_task"):
        ARCHS.build("mmoe", {"embeddings": "per_task"}, encoder=spec, tasks=click_tasks())


def test_multi_valued_field_is_the_mean_of_its_ids_embeddings_without_padding():
    from mtlrun.models.embedded import input_layer

    encoder = tabular_spec(embedding_dim=3).build()
    layer = input_layer(encoder)
    assert layer is not None and layer.out_dim == 2 + 3 + 3 + 3
    x = torch.tensor([[0.5, -1.0, 1.0, 2.0, 4.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    out = layer(x)
    table = layer.bags[0].weight
    torch.testing.assert_close(out[0, -3:], (table[4] + table[2]) / 2)  # the padding slot (0) is skipped
    torch.testing.assert_close(out[1, -3:], torch.zeros(3))  # no ids: zeros
    torch.testing.assert_close(out[0, :2], x[0, :2])

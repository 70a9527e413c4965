"""The benchmark papers' encoders: shapes, MMoE's embeddings, and QM9's message passing by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mtlrun.errors import ConfigError
from mtlrun.models import ENCODERS
from mtlrun.models.encoders_papers import EdgeConv, edge_mask, mean_aggregate


def test_lenet_and_resnet18_shapes():
    lenet = ENCODERS.build("lenet", {}, input_shape=(1, 28, 28))
    assert lenet.stage_shapes == [(10, 12, 12), (20, 4, 4), (50,)]
    assert lenet(torch.zeros(2, 1, 28, 28)).shape == (2, 50)
    resnet = ENCODERS.build("resnet18", {"width": 4}, input_shape=(3, 16, 16))
    assert resnet.stage_shapes == [(4, 16, 16), (8, 8, 8), (16, 4, 4), (32,)]  # 2x2 pooled globally
    assert resnet(torch.zeros(2, 3, 16, 16)).shape == (2, 32)
    full = ENCODERS.build("resnet18", {}, input_shape=(3, 64, 64))
    assert full.stage_shapes[-2] == (256, 16, 16) and full.out_dim == 2048  # 4x4 pooling of 512 x 8 x 8
    assert 11_000_000 < sum(p.numel() for p in full.parameters()) < 11_300_000
    with pytest.raises(ConfigError, match="encoder=lenet needs image inputs"):
        ENCODERS.build("lenet", {}, input_shape=(10,))


def test_tabular_embedding_uses_one_table_per_column_and_an_unknown_row():
    torch.manual_seed(0)
    encoder = ENCODERS.build("tabular_embedding", {"cardinalities": [3, 2], "hidden": [5]}, input_shape=(4,))
    embed = encoder.stages[0][0]
    x = torch.tensor([[2.0, 1.0, 0.5, -0.5], [-1.0, 0.0, 0.0, 0.0]])
    out = embed(x)
    assert out.shape == (2, 2 * 4 + 2)
    assert torch.equal(out[0, :4], embed.tables[0].weight[2]) and torch.equal(out[0, 4:8], embed.tables[1].weight[1])
    assert torch.equal(out[1, :4], embed.tables[0].weight[3])  # -1 (unseen) -> the extra row
    assert torch.equal(out[:, 8:], x[:, 2:])
    assert encoder(x).shape == (2, 5)
    with pytest.raises(ConfigError, match="lists 5 columns but the inputs have only 4"):
        ENCODERS.build("tabular_embedding", {"cardinalities": [2] * 5}, input_shape=(4,))


def _hand_conv(bias_entry: bool) -> EdgeConv:
    """W(e) = d * I (plus [[0, 1], [0, 0]] when ``bias_entry``), no root term."""
    conv = EdgeConv(edge_dim=1, dim=2, edge_hidden=1)
    with torch.no_grad():
        conv.edge_in.weight.fill_(1.0)
        conv.edge_in.bias.zero_()
        conv.edge_out.weight.copy_(torch.tensor([[1.0], [0.0], [0.0], [1.0]]))
        conv.edge_out.bias.copy_(torch.tensor([0.0, 1.0 if bias_entry else 0.0, 0.0, 0.0]))
        conv.root.weight.zero_()
        conv.root.bias.zero_()
    return conv


def test_message_passing_matches_a_hand_computed_aggregation():
    # three atoms at (0,0,0), (1,0,0), (0,2,0) plus one padding slot; distances 1, 2, sqrt(5)
    z = torch.tensor([[6.0, 1.0, 8.0, 0.0]])
    pos = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 0]]])
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, 5.0]]])
    mask = edge_mask(z)
    assert mask[0].tolist() == [[0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    edges = torch.cdist(pos, pos).unsqueeze(-1)
    s5 = math.sqrt(5)
    # m_i = mean over the other real atoms j of d_ij * h_j
    expected = torch.tensor([[1.0, 1.5], [(1 + s5) / 2, s5 / 2], [1.0, s5 / 2], [0.0, 0.0]])
    out = _hand_conv(False)(h, edges, mask)[0]
    assert torch.allclose(out, expected, atol=1e-6)
    # the bias of the edge network adds [[0, 1], [0, 0]] h_j = (h_j[1], 0) to every message
    with_bias = expected + torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.5, 0.0], [0.0, 0.0]])
    conv = _hand_conv(True)
    assert torch.allclose(conv(h, edges, mask)[0], with_bias, atol=1e-6)
    # the factorised computation equals the explicit W(e_ij) h_j definition
    assert torch.allclose(mean_aggregate(h, conv.edge_weights(edges), mask)[0], with_bias, atol=1e-6)


def test_mpnn_is_invariant_to_atom_order_and_padding():
    torch.manual_seed(0)
    encoder = ENCODERS.build("mpnn", {"dim": 8}, input_shape=(6, 4)).eval()
    molecule = torch.tensor([[6, 0.0, 0, 0], [1, 1.09, 0, 0], [8, -0.7, 1.1, 0], [1, 0, -1, 0.3]])
    padded = torch.cat([molecule, torch.zeros(2, 4)]).unsqueeze(0)
    shuffled = torch.cat([molecule[[2, 0, 3, 1]], torch.zeros(2, 4)]).unsqueeze(0)
    shorter = ENCODERS.build("mpnn", {"dim": 8}, input_shape=(4, 4))
    shorter.load_state_dict(encoder.state_dict())
    out = encoder(padded)
    assert torch.allclose(out, encoder(shuffled), atol=1e-5)
    assert torch.allclose(out, shorter.eval()(molecule.unsqueeze(0)), atol=1e-5)
    moved = padded.clone()
    moved[0, :4, 1] += 3.0  # a rigid translation changes no distance
    assert torch.allclose(out, encoder(moved), atol=1e-5)
    stretched = padded.clone()
    stretched[0, 1, 1] = 2.0
    assert not torch.allclose(out, encoder(stretched), atol=1e-3)


def test_resnet18_starts_from_a_local_weights_file(tmp_path):
    torch.manual_seed(0)
    source = ENCODERS.build("resnet18", {"width": 4}, input_shape=(3, 16, 16))
    path = tmp_path / "trunk.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    loaded = ENCODERS.build("resnet18", {"width": 4, "weights": str(path)}, input_shape=(3, 16, 16))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(ConfigError, match="does not fit"):
        ENCODERS.build("resnet18", {"width": 8, "weights": str(path)}, input_shape=(3, 16, 16))
    with pytest.raises(ConfigError, match="no such file"):
        ENCODERS.build("resnet18", {"weights": str(tmp_path / "nope.pt")}, input_shape=(3, 16, 16))

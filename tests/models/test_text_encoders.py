"""Text encoders: padding never changes an example's features; Kim's pooling, the BiLSTM's final
states, column sharing, pretrained checkpoints, and which encoders and archs go with text."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from mtlrun.data.text import TextVocab
from mtlrun.errors import ConfigError
from mtlrun.models.text import bilstm, text_cnn, transformer

VOCAB = TextVocab(size=50, pad_id=0)
SMALL = {
    "text_cnn": (text_cnn, {"embedding_dim": 8, "filters": 4, "widths": [2, 3, 5]}),
    "bilstm_max": (bilstm, {"embedding_dim": 8, "hidden_size": 6, "pooling": "max"}),
    "bilstm_mean": (bilstm, {"embedding_dim": 8, "hidden_size": 6, "pooling": "mean", "layers": 2}),
    "bilstm_last": (bilstm, {"embedding_dim": 8, "hidden_size": 6, "pooling": "last"}),
    "transformer_mean": (transformer, {"dim": 8, "heads": 2, "ff_dim": 16}),
    "transformer_cls": (transformer, {"dim": 8, "heads": 2, "ff_dim": 16, "pooling": "cls"}),
}


def ids(rows: list[list[int]], width: int, columns: int = 1) -> torch.Tensor:
    out = torch.zeros(len(rows), columns, width, dtype=torch.int64)
    for i, row in enumerate(rows):
        for c in range(columns):
            out[i, c, : len(row)] = torch.tensor(row)
    return out


@pytest.mark.parametrize("name", list(SMALL))
def test_features_do_not_depend_on_the_padding(name):
    factory, options = SMALL[name]
    torch.manual_seed(0)
    encoder = factory((1, 16), vocab=VOCAB, **options).eval()
    texts = [[2, 7, 9, 11, 5, 8], [2, 30], [2, 4, 4, 4, 12, 13, 14, 15, 16, 17]]
    with torch.no_grad():
        together = encoder(ids(texts, 16))  # padded to 16, as a batch of different lengths
        for i, text in enumerate(texts):
            alone = encoder(ids([text], len(text)))  # no padding at all
            torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-5)


def test_text_cnn_is_max_over_time_of_relu_convolutions():
    torch.manual_seed(0)
    encoder = text_cnn((1, 12), vocab=VOCAB, embedding_dim=4, widths=[3], filters=2, dropout=0.0).eval()
    body = encoder.stages[0].body
    text = [2, 5, 6, 7, 8]
    with torch.no_grad():
        got = encoder(ids([text], 12))[0]
        emb = body.embedding(torch.tensor(text))  # (L, E)
        conv = body.convs[0]
        windows = [
            torch.relu((conv.weight * emb[i : i + 3].T.unsqueeze(0)).sum((1, 2)) + conv.bias)
            for i in range(len(text) - 2)
        ]
        torch.testing.assert_close(got, torch.stack(windows).amax(0))


def test_bilstm_last_is_both_directions_final_states():
    torch.manual_seed(0)
    encoder = bilstm((1, 10), vocab=VOCAB, embedding_dim=5, hidden_size=3, pooling="last").eval()
    body = encoder.stages[0].body
    text = [2, 9, 8, 7]
    with torch.no_grad():
        got = encoder(ids([text], 10))[0]
        outputs, _ = body.lstm(body.embedding(torch.tensor([text])))  # unpadded, (1, L, 2H)
        expected = torch.cat([outputs[0, -1, :3], outputs[0, 0, 3:]])
        torch.testing.assert_close(got, expected)


def test_columns_share_one_encoder_and_concatenate():
    torch.manual_seed(0)
    encoder = text_cnn((2, 8), vocab=VOCAB, embedding_dim=6, filters=3, widths=[2], dropout=0.0).eval()
    assert encoder.stage_shapes[-1] == (6,)
    x = torch.zeros(1, 2, 8, dtype=torch.int64)
    x[0, 0, :3] = torch.tensor([2, 5, 6])
    x[0, 1, :4] = torch.tensor([2, 9, 9, 3])
    with torch.no_grad():
        both = encoder(x)[0]
        second = encoder(torch.stack([x[:, 1], x[:, 1]], dim=1))[0, :3]
    torch.testing.assert_close(both[3:], second)


def test_hidden_adds_a_projection_stage():
    encoder = transformer((1, 8), vocab=VOCAB, dim=8, heads=2, ff_dim=8, hidden=5)
    assert encoder.stage_shapes == [(8,), (5,)]
    assert encoder(ids([[2, 3, 4]], 8)).shape == (1, 5)


def test_bad_options_and_non_text_inputs_are_one_line():
    with pytest.raises(ConfigError, match="encoder.dim=10 must be a multiple of encoder.heads=4"):
        transformer((1, 8), vocab=VOCAB, dim=10, heads=4)
    with pytest.raises(ConfigError, match="encoder=text_cnn reads token ids; use it with a text dataset"):
        text_cnn((16,))
    with pytest.raises(ConfigError, match="encoder.widths must list"):
        text_cnn((1, 8), vocab=VOCAB, widths=[])


@pytest.fixture
def text_csv(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": [f"w{i % 7} w{i % 3} x" for i in range(40)], "y": [0, 1] * 20}).to_csv(path, index=False)
    return path


def _build_with(text_csv, *overrides: str):
    from mtlrun.data import build_dataset
    from mtlrun.train.build import encoder_spec

    data = build_dataset({"name": "text", "path": str(text_csv), "tasks": {"y": "binary"}, "tokenizer": "byte"})
    cfg = OmegaConf.create({"encoder": {"name": "auto"}, "arch": {"name": "hps"}})
    for override in overrides:
        key, value = override.split("=")
        cfg[key]["name"] = value
    return encoder_spec(cfg, data)


def test_which_encoders_and_archs_go_with_text(text_csv):
    spec = _build_with(text_csv)
    assert spec.name == "text_cnn" and spec.context["vocab"].size == 260
    assert spec.build().out_dim == 300
    with pytest.raises(ConfigError, match="encoder=mlp does not read text.*encoder=text_cnn, encoder=bilstm"):
        _build_with(text_csv, "encoder=mlp")
    with pytest.raises(ConfigError, match="arch=mmoe gates on the raw input"):
        _build_with(text_csv, "encoder=bilstm", "arch=mmoe")


def _checkpoint(folder, text_csv):
    """A tiny BERT saved as transformers does, with a WordPiece tokenizer.json of mtlrun's."""
    transformers = pytest.importorskip("transformers")
    from mtlrun.data.formats.tokenizer import learn_tokenizer

    tokenizer = learn_tokenizer("wordpiece", pd.read_csv(text_csv)["text"].tolist(), 40, 1, True)
    folder.mkdir()
    (folder / "tokenizer.json").write_text(tokenizer.to_json(), encoding="utf-8")
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def test_a_local_transformers_checkpoint_with_its_own_tokenizer(text_csv, tmp_path):
    from mtlrun.data import build_dataset
    from mtlrun.models import EncoderSpec

    folder = _checkpoint(tmp_path / "bert", text_csv)
    data = build_dataset(
        {"name": "text", "path": str(text_csv), "tasks": {"y": "binary"}, "tokenizer": str(folder), "max_length": 16}
    )
    context = {"vocab": data.encoder_context["text"]["vocab"]}
    spec = EncoderSpec("transformer", data.input_shape, {"weights": str(folder)}, context)
    encoder = spec.build().eval()
    assert encoder.out_dim == 8
    x, _ = next(data.train.batches(4))
    with torch.no_grad():
        assert encoder(x).shape == (4, 8)
    own = build_dataset({"name": "text", "path": str(text_csv), "tasks": {"y": "binary"}})
    wrong = EncoderSpec(
        "transformer", own.input_shape, {"weights": str(folder)}, {"vocab": own.encoder_context["text"]["vocab"]}
    )
    with pytest.raises(ConfigError, match=f"has its own vocabulary: tokenize with it, dataset.tokenizer={folder}"):
        wrong.build()


def test_a_checkpoint_without_transformers_names_the_extra(tmp_path, monkeypatch):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"needs the transformers package: pip install 'mtlrun\[text\]'"):
        transformer((1, 8), vocab=VOCAB, weights=str(folder))

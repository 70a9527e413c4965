"""``dataset=text``: columns, tasks and splits as ``dataset=table``; ids, padding, length buckets."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from mtlrun.data import build_dataset
from mtlrun.data.formats.tokenizer import CLS, SEP
from mtlrun.data.text import TextSplit, is_text
from mtlrun.errors import ConfigError

TASKS = {"sentiment": {"kind": "binary"}, "topic": {"kind": "classification"}}


def write_reviews(path, n: int = 60) -> None:
    words = ["good", "bad", "ball", "soup", "the", "very", "it", "was"]
    rows = []
    for i in range(n):
        body = " ".join(words[(i * k) % len(words)] for k in range(1, 2 + i % 9))
        rows.append({"review": body, "title": words[i % 4], "sentiment": i % 2, "topic": ["a", "b", "c"][i % 3]})
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture
def reviews(tmp_path):
    path = tmp_path / "reviews.csv"
    write_reviews(path)
    return path


def build(path, **options):
    return build_dataset({"name": "text", "path": str(path), "tasks": TASKS, **options})


def test_text_columns_tasks_and_shapes(reviews):
    data = build(reviews, max_length=8, tokenizer="char")
    assert is_text(data) and data.default_encoder == "text_cnn"
    assert data.input_shape == (2, 8)  # review and title, found as the string columns
    assert data.info["text"]["columns"] == ["review", "title"]
    assert isinstance(data.train, TextSplit) and data.train.x.dtype == torch.int64
    x = data.train.x
    assert x.shape[1] == 2 and x.shape[2] <= 8
    assert bool((x[:, :, 0] == CLS).all())
    lengths = (x != 0).sum(-1).amax(1)
    assert torch.equal(lengths, data.train.lengths)
    assert set(data.tasks) == {"sentiment", "topic"} and data.tasks["topic"].out_dim == 3
    assert sum(data.info["sizes"]) == 60
    assert json.loads(data.files["tokenizer.json"])["mtlrun_tokenizer"] == "char"


def test_join_makes_one_pair_sequence(reviews):
    data = build(reviews, join=True, text=["title", "review"], tokenizer="byte", max_length=64)
    assert data.input_shape == (1, 64)
    row = data.train.x[0, 0].tolist()
    assert row[0] == CLS and SEP in row


def test_same_config_gives_the_same_ids_and_tokenizer(reviews):
    a, b = build(reviews), build(reviews)
    assert a.info["fingerprint"] == b.info["fingerprint"]
    assert a.files == b.files
    assert build(reviews, seed=1).info["fingerprint"] != a.info["fingerprint"]


def test_tokenizer_is_learned_on_the_train_split_only(tmp_path):
    frame = pd.DataFrame({"text": ["aaa bbb"] * 20 + ["zzz qqq"] * 10, "y": [0, 1] * 15})
    frame["split"] = ["train"] * 20 + ["val"] * 5 + ["test"] * 5
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = build_dataset(
        {"name": "text", "path": str(tmp_path / "t.csv"), "tasks": {"y": "binary"}, "min_frequency": 1}
    )
    vocab = json.loads(data.files["tokenizer.json"])["model"]["vocab"]
    assert "aaa" in vocab and "zzz" not in vocab and "##z" not in vocab


def test_length_buckets_cut_padding_and_keep_every_row(reviews):
    data = build(reviews, tokenizer="char")
    split = data.train
    rows = []

    def padding(buckets: int) -> int:
        split.buckets = buckets
        total = 0
        for x, y in split.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0)):
            total += int((x == 0).sum())
            rows.append(len(y["topic"]))
        return total

    plain, bucketed = padding(0), padding(4)
    assert bucketed < plain
    assert sum(rows) == 2 * len(split)
    first = [x for x, _ in split.batches(8, shuffle=True, generator=torch.Generator().manual_seed(3))]
    again = [x for x, _ in split.batches(8, shuffle=True, generator=torch.Generator().manual_seed(3))]
    assert all(torch.equal(p, q) for p, q in zip(first, again))
    for x, _ in split.batches(8):  # in order too: trimmed to the batch's longest text
        assert bool((x[:, :, -1] != 0).any())


def test_every_row_once_per_epoch_with_buckets(reviews):
    split = build(reviews).train
    order = split.order(7, torch.Generator().manual_seed(1))
    seen = torch.cat(order)
    assert sorted(seen.tolist()) == list(range(len(split)))
    assert len(order) == split.num_batches(7)


def test_bad_text_settings_are_one_line(reviews, tmp_path):
    with pytest.raises(ConfigError, match="dataset.text: .*no column 'body'|dataset.text.*body"):
        build(reviews, text=["body"])
    with pytest.raises(ConfigError, match="dataset.join=true joins two text columns"):
        build(reviews, text=["review"], join=True)
    with pytest.raises(ConfigError, match="dataset.text: column 'topic'.*task"):
        build(reviews, text=["topic"])
    numbers = tmp_path / "numbers.csv"
    pd.DataFrame({"a": [1.0] * 20, "y": [0, 1] * 10}).to_csv(numbers, index=False)
    with pytest.raises(ConfigError, match="no string column"):
        build_dataset({"name": "text", "path": str(numbers), "tasks": {"y": "binary"}})

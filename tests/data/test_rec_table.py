"""dataset=table on click logs: user groups, conditional metrics, hashed unseen ids, multi-valued fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtlrun.data import DATASETS
from mtlrun.data.base import GROUP_KEY, given_key
from mtlrun.data.evaluable import check_evaluable
from mtlrun.data.formats.columns import category_codes, stable_bucket
from mtlrun.errors import ConfigError

METRICS = ["auroc", "gauc", "logloss"]
TASKS = {
    "click": {"kind": "binary", "metrics": METRICS},
    "conversion": {"kind": "binary", "metrics": METRICS, "given": "click"},
}


def log() -> pd.DataFrame:
    """14 impressions of 3 users; a conversion implies a click."""
    return pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3],
            "item_id": [10, 11, 12, 13, 10, 11, 14, 15, 12, 99, 98, 97, 10, 11],
            "tags": ["a|b", "b", "", "c|a|b", "a", None, "b|z", "c", "a|b|c|d", "q", "a", "b", "c", "a"],
            "click": [1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0],
            "conversion": [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0],
            "split": ["train"] * 8 + ["val"] * 3 + ["test"] * 3,
        }
    )


def build(tmp_path, frame: pd.DataFrame | None = None, **options):
    frame = log() if frame is None else frame
    frame.to_csv(tmp_path / "clicks.csv", index=False)
    conf = {"path": str(tmp_path / "clicks.csv"), "tasks": TASKS, "group_by": "user_id", **options}
    return DATASETS.build("table", conf)


def test_groups_and_the_given_task_ride_beside_the_labels(tmp_path):
    data = build(tmp_path, categorical=["user_id", "item_id"])
    assert data.train.targets[GROUP_KEY].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert torch.equal(data.val.targets[given_key("click")], data.val.targets["click"])
    assert list(data.tasks["conversion"].metrics)[3:] == [
        "auroc_given_click",
        "gauc_given_click",
        "logloss_given_click",
    ]
    alone = data.select(["conversion"])  # a single-task baseline keeps what its metrics read
    assert set(alone.test.targets) == {"conversion", given_key("click"), GROUP_KEY}
    assert data.info["group_by"] == "user_id"


def test_gauc_without_a_user_column_and_a_bad_given_are_one_line_errors(tmp_path):
    log().to_csv(tmp_path / "clicks.csv", index=False)
    with pytest.raises(ConfigError, match="gauc .* needs dataset.group_by=COLUMN"):
        DATASETS.build("table", {"path": str(tmp_path / "clicks.csv"), "tasks": TASKS})
    bad = {**TASKS, "conversion": {"kind": "binary", "given": "price"}}
    with pytest.raises(ConfigError, match=r"dataset.tasks.conversion.given=price .*click"):
        DATASETS.build("table", {"path": str(tmp_path / "clicks.csv"), "tasks": bad})
    with pytest.raises(ConfigError, match="dataset.group_by: column 'who'"):
        build(tmp_path, group_by="who")


def test_a_split_whose_clicked_rows_hold_one_class_cannot_score_the_given_auc(tmp_path):
    data = build(tmp_path)
    check_evaluable(data)
    frame = log()
    frame.loc[11, "conversion"] = 1  # both clicks of the test split now convert
    with pytest.raises(
        ConfigError,
        match="test split cannot score task conversion with metric auroc_given_click: on the rows where click is pos",
    ):
        check_evaluable(build(tmp_path, frame))


def test_ids_unseen_in_train_go_to_stable_hash_buckets(tmp_path):
    plain = build(tmp_path, categorical=["user_id", "item_id"])
    hashed = build(tmp_path, categorical=["user_id", "item_id"], hash_buckets=5)
    item = plain.info["features"]["categorical"]["item_id"]  # train vocabulary: 10, 11, 12, 13, 14, 15
    assert item == 6
    column = list(hashed.info["features"]["categorical"]).index("item_id")
    unseen_plain = plain.val.x[1, column].item()  # item 99 in the val split
    unseen_hashed = hashed.val.x[1, column].item()
    assert unseen_plain == 0
    assert unseen_hashed == 6 + 1 + stable_bucket("99", 5)  # after index 0 and the 6 train ids
    assert hashed.encoder_context["tabular"]["cardinalities"][column] == 6 + 1 + 5
    # the same ids land in the same buckets in every process (no salted Python hash)
    codes = category_codes(pd.Series([99, 98, 12, None]), {"12": 1}, 7)  # floats (a gap): 12.0 is id 12
    assert codes.tolist() == [2 + stable_bucket("99", 7), 2 + stable_bucket("98", 7), 1, 0]


def test_multi_valued_column_becomes_padded_index_rows(tmp_path):
    data = build(tmp_path, multivalued=["tags"], categorical=["user_id", "item_id"])
    assert data.encoder_context["tabular"]["bags"] == [[1 + 4, 3]]  # a, b, c, z in train; at most 3 per cell
    tags = data.train.x[:, -3:]
    # vocabulary a=1, b=2, c=3, z=4; 0 pads and stands for no id
    assert tags.tolist()[:8] == [[1, 2, 0], [2, 0, 0], [0, 0, 0], [3, 1, 2], [1, 0, 0], [0, 0, 0], [2, 4, 0], [3, 0, 0]]
    assert data.val.x[0, -3:].tolist() == [1, 2, 3]  # a|b|c|d: cut at 3 ids
    assert data.val.x[1, -3:].tolist() == [0, 0, 0]  # q is unseen: left out without hash buckets
    hashed = build(tmp_path, multivalued=["tags"], hash_buckets=4)
    assert hashed.val.x[1, -3:].tolist() == [5 + stable_bucket("q", 4), 0, 0]
    short = build(tmp_path, multivalued=["tags"], max_values=1)
    assert short.encoder_context["tabular"]["bags"] == [[5, 1]]
    with pytest.raises(ConfigError, match="dataset.multivalued: column 'tags' is also listed"):
        build(tmp_path, multivalued=["tags"], categorical=["tags"])


def test_cache_serves_the_same_encoding_memory_mapped_without_reading_the_log_again(tmp_path, monkeypatch):
    from mtlrun.data.formats import encoded_cache
    from mtlrun.data.loader import ArraySplit, LoaderSplit
    from mtlrun.data.own import table

    options = {"categorical": ["user_id", "item_id"], "multivalued": ["tags"], "hash_buckets": 3}
    memory = build(tmp_path, **options)
    monkeypatch.setattr(encoded_cache, "BLOCK", 4)  # several blocks per split
    cached = build(tmp_path, **options, cache=str(tmp_path / "cache"))
    assert isinstance(cached.train, LoaderSplit) and isinstance(cached.train.source, ArraySplit)
    assert isinstance(cached.train.source.x, np.memmap)
    assert cached.info["fingerprint"] == memory.info["fingerprint"]  # the same bytes
    for name in ("train", "val", "test"):
        x, ys = cached.split(name).source[slice(None)]
        assert torch.equal(x, memory.split(name).x)
        assert set(ys) == set(memory.split(name).targets)
    assert list(cached.tasks["conversion"].metrics) == list(memory.tasks["conversion"].metrics)
    assert cached.encoder_context == memory.encoder_context

    def no_reading(*args, **kwargs):
        raise AssertionError("the log was read again")

    monkeypatch.setattr(table, "read_table", no_reading)
    conf = {
        "path": str(tmp_path / "clicks.csv"),
        "tasks": TASKS,
        "group_by": "user_id",
        "cache": str(tmp_path / "cache"),
    }
    again = DATASETS.build("table", {**conf, **options})
    assert again.info["cache"] == cached.info["cache"]
    with pytest.raises(AssertionError, match="read again"):  # another option: another encoding
        DATASETS.build("table", {**conf, **options, "hash_buckets": 4})

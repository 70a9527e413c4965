"""dataset=table: known answers read back from small files written here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtlrun.data import DATASETS
from mtlrun.errors import ConfigError
from mtlrun.models import EncoderSpec
from mtlrun.models.tabular import TabularInput, default_embedding_dim

TASKS = {"species": {"kind": "classification"}, "sex": {"kind": "binary"}, "mass": {"kind": "regression"}}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "species": ["b", "a", "c", "a", "b", "c", "a", "b", "c", "a"],
            "sex": ["m", "f", None, "f", "m", "m", "f", "f", "m", "m"],
            "mass": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0],
            "island": ["x", "y", "x", None, "y", "x", "z", "y", "x", "y"],
            "length": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
            "split": ["train"] * 6 + ["val", "val", "test", "test"],
        }
    )


def test_classes_standardisation_and_features_read_back(tmp_path):
    frame = _frame()
    frame.loc[8, "island"] = "w"  # a category unseen in train
    frame.to_csv(tmp_path / "t.csv", index=False)
    d = DATASETS.build("table", {"path": str(tmp_path / "t.csv"), "tasks": TASKS})
    assert [len(d.train), len(d.val), len(d.test)] == [6, 2, 2]
    assert d.info["tasks"]["species"]["classes"] == ["a", "b", "c"]
    assert d.train.targets["species"].tolist() == [1, 0, 2, 0, 1, 2]
    # binary: "m" is the positive class (second in sorted order); the empty cell is NaN
    sex = d.train.targets["sex"]
    assert sex[:2].tolist() == [1.0, 0.0] and torch.isnan(sex[2])
    assert d.has_missing_labels and d.tasks["sex"].masked and not d.tasks["species"].masked
    # regression: standardised on train only (mean 35, sample std of 10..60), metrics in original units
    spec = d.tasks["mass"]
    train = torch.tensor([10.0, 20, 30, 40, 50, 60], dtype=torch.float64)
    assert spec.target_shift == pytest.approx(35.0) and spec.target_scale == pytest.approx(float(train.std()))
    assert torch.equal(d.val.targets["mass"], torch.tensor([70.0, 80.0]))
    out = torch.tensor([[(70.0 - 35.0) / spec.target_scale]])
    assert spec.predictions(out).item() == pytest.approx(70.0, rel=1e-5)
    # features: numeric first (standardised on train, missing -> 0), then categorical indices (0 = unknown)
    assert d.input_shape == (2,) and d.default_encoder == "tabular"
    assert d.encoder_context["tabular"] == {"numeric": 1, "cardinalities": [3]}  # x, y + unknown
    present = np.array([1.0, 2.0, 4.0, 5.0, 6.0])
    expected = (np.array([1.0, 2.0]) - present.mean()) / present.std()
    assert torch.allclose(d.train.x[:2, 0], torch.tensor(expected, dtype=torch.float32))
    assert d.train.x[2, 0].item() == 0.0  # missing length: the train mean
    assert d.train.x[:, 1].tolist() == [1.0, 2.0, 1.0, 0.0, 2.0, 1.0]  # x=1, y=2, missing=0
    assert d.val.x[:, 1].tolist() == [0.0, 2.0]  # z unseen in train -> unknown
    assert d.test.x[0, 1].item() == 0.0  # w unseen -> unknown


def test_categorical_embedding_sizes():
    assert [default_embedding_dim(n, 16) for n in (2, 4, 10, 30, 10_000)] == [2, 3, 6, 11, 16]
    spec = EncoderSpec("tabular", (4,), {}, {"numeric": 2, "cardinalities": [4, 100]})
    encoder = spec.build()
    first = encoder.stages[0][0]
    assert isinstance(first, TabularInput)
    assert [(e.num_embeddings, e.embedding_dim) for e in first.embeddings] == [(4, 3), (100, 16)]
    assert encoder.stages[0][1].in_features == 2 + 3 + 16
    fixed = EncoderSpec("tabular", (4,), {"embedding_dim": 5}, {"numeric": 2, "cardinalities": [4, 100]}).build()
    assert [e.embedding_dim for e in fixed.stages[0][0].embeddings] == [5, 5]
    rows = torch.tensor([[0.5, -1.0, 3.0, 99.0], [0.0, 0.0, 0.0, 0.0]])
    assert encoder(rows).shape == (2, 64)
    # without categorical columns the encoder is the plain MLP (and groupable for baselines)
    plain = EncoderSpec("tabular", (3,), {}, {"numeric": 3, "cardinalities": []}).build()
    assert not any(isinstance(m, TabularInput) for m in plain.modules())


def test_listed_categorical_numeric_column_and_feature_list(tmp_path):
    frame = _frame().assign(code=[7, 8, 7, 9, 8, 7, 7, 8, 9, 9])
    frame.to_csv(tmp_path / "t.csv", index=False)
    d = DATASETS.build(
        "table",
        {"path": str(tmp_path / "t.csv"), "tasks": TASKS, "features": ["code", "length"], "categorical": ["code"]},
    )
    assert d.info["features"]["numeric"] == ["length"]
    assert d.encoder_context["tabular"]["cardinalities"] == [4]  # 7, 8, 9 + unknown
    assert d.train.x[:, 1].tolist() == [1.0, 2.0, 1.0, 3.0, 2.0, 1.0]


@pytest.mark.parametrize("fmt", ["tsv", "parquet", "npz"])
def test_every_file_format_reads_the_same(tmp_path, fmt):
    frame = _frame().drop(columns=["island"]).assign(sex=[1, 0, np.nan, 0, 1, 1, 0, 0, 1, 1])
    frame.to_csv(tmp_path / "t.csv", index=False)
    path = tmp_path / f"t.{fmt}"
    if fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        np.savez(path, **{c: frame[c].to_numpy(dtype=str if c in ("species", "split") else float) for c in frame})
    a = DATASETS.build("table", {"path": str(tmp_path / "t.csv"), "tasks": TASKS})
    b = DATASETS.build("table", {"path": str(path), "tasks": TASKS})
    assert torch.equal(a.train.x, b.train.x)
    for task in TASKS:
        assert torch.equal(a.test.targets[task].nan_to_num(-9), b.test.targets[task].nan_to_num(-9))


def test_separate_files_and_seeded_stratified_fractions(tmp_path):
    frame = _frame().drop(columns=["split"])
    frame.iloc[:6].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[6:8].to_csv(tmp_path / "val.csv", index=False)
    frame.iloc[8:].to_csv(tmp_path / "test.csv", index=False)
    files = {k: str(tmp_path / f"{k}.csv") for k in ("train", "val", "test")}
    d = DATASETS.build("table", {**files, "tasks": TASKS})
    assert [len(d.train), len(d.val), len(d.test)] == [6, 2, 2]
    rng = np.random.default_rng(0)
    big = pd.DataFrame(
        {"y": np.repeat(["a", "b"], [80, 20]), "z": rng.normal(size=100), "f": rng.normal(size=100)}
    ).sample(frac=1.0, random_state=0)
    big.to_csv(tmp_path / "big.csv", index=False)
    options = {"path": str(tmp_path / "big.csv"), "tasks": {"y": "binary", "z": "regression"}, "val_fraction": 0.2}
    one = DATASETS.build("table", {**options, "stratify": "y"})
    assert [len(one.train), len(one.val), len(one.test)] == [65, 20, 15]
    assert one.val.targets["y"].sum().item() == 4  # 20 % of each class: 16 a + 4 b
    again = DATASETS.build("table", {**options, "stratify": "y"})
    assert torch.equal(one.train.x, again.train.x)
    other = DATASETS.build("table", {**options, "stratify": "y", "seed": 1})
    assert not torch.equal(one.train.x, other.train.x)


def test_multilabel_columns_and_ignore_index(tmp_path):
    frame = pd.DataFrame(
        {
            "a": [1, 0, 1, None, 0, 1, 0, 1],
            "b": [0, 0, 1, 1, 1, 0, 1, 0],
            "k": [2, -1, 0, 1, 2, 0, 1, -1],
            "f": np.arange(8.0),
            "split": ["train"] * 4 + ["val", "val", "test", "test"],
        }
    )
    frame.to_csv(tmp_path / "m.csv", index=False)
    tasks = {"tags": {"kind": "multilabel", "columns": ["a", "b"]}, "k": {"kind": "classification", "ignore_index": -1}}
    d = DATASETS.build("table", {"path": str(tmp_path / "m.csv"), "tasks": tasks})
    tags = d.train.targets["tags"]
    assert tags.shape == (4, 2) and torch.isnan(tags[3, 0]) and tags[2].tolist() == [1.0, 1.0]
    assert d.tasks["tags"].out_dim == 2 and d.tasks["tags"].masked
    assert d.train.targets["k"].tolist() == [2, -1, 0, 1]  # -1 = missing class label
    assert d.info["tasks"]["k"]["classes"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("change", "options", "needle"),
    [
        (lambda f: f, {"path": "nope.csv"}, "file not found"),
        (lambda f: f, {"tasks": {"weight": {"kind": "regression"}}}, "column 'weight' not in"),
        (lambda f: f.assign(species="a"), {}, "has only 'a' in the train split"),
        (lambda f: f.assign(mass=["heavy"] + [1.0] * 9), {}, "non-numeric value 'heavy'"),
        (lambda f: f.assign(split=["train"] * 8 + ["test"] * 2), {}, "the val split is empty"),
        (lambda f: f, {"tasks": {"species": {"kind": "ordinal"}}}, "choose one of: binary, classification"),
        (lambda f: f, {"features": ["lenght"]}, "column 'lenght' not in"),
    ],
)
def test_errors_are_one_line_and_name_the_culprit(tmp_path, change, options, needle):
    change(_frame()).to_csv(tmp_path / "t.csv", index=False)
    full = {"path": str(tmp_path / "t.csv"), "tasks": TASKS, **options}
    if options.get("path"):
        full["path"] = str(tmp_path / options["path"])
    with pytest.raises(ConfigError) as ex:
        DATASETS.build("table", full)
    assert needle in str(ex.value) and "\n" not in str(ex.value)


def test_fingerprint_follows_the_file_content_not_its_path(tmp_path):
    _frame().to_csv(tmp_path / "t.csv", index=False)
    first = DATASETS.build("table", {"path": str(tmp_path / "t.csv"), "tasks": TASKS}).info["fingerprint"]
    again = DATASETS.build("table", {"path": str(tmp_path / "t.csv"), "tasks": TASKS}).info["fingerprint"]
    _frame().assign(mass=lambda f: f["mass"] + 1).to_csv(tmp_path / "t.csv", index=False)
    edited = DATASETS.build("table", {"path": str(tmp_path / "t.csv"), "tasks": TASKS}).info["fingerprint"]
    assert first == again != edited

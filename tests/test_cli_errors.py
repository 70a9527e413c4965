"""Bad input: one line naming the key and the valid choices, exit status 2, no traceback."""

from __future__ import annotations

import pytest

from tests.conftest import run_subprocess

BAD_INPUTS = [
    (["arch=nope"], "arch=nope", "hps"),
    (["balancer=nope"], "balancer=nope", "ew"),
    (["dataset=nope"], "dataset=nope", "multi_digits"),
    (["trainer.lr=abc"], "trainer.lr", "Float"),
    (["trainer.epochs=-1"], "trainer.epochs=-1", ">= 1"),
    (["trainer.batch_size=0"], "trainer.batch_size=0", ">= 1"),
    (["trainer.nope=1"], "trainer.nope", "epochs"),
    (["trainer.optimizer=rmsprop"], "trainer.optimizer=rmsprop", "adamw"),
    (["balancer=fixed", "tasks.weights={nope:2}"], "nope", "left"),
    (["tasks.names=[left,zzz]"], "zzz", "parity"),
    (["tasks=digits_left_right", "tasks.primary={left:nope}"], "tasks.primary.left=nope", "f1_macro"),
    (["arch.nope=1"], "arch.nope", "name"),
    (["dataset=synthetic", "dataset.correlation=2"], "dataset.correlation=2.0", "must be in [-1, 1]"),
    (["dataset=synthetic", "encoder=cnn"], "encoder=cnn", "(C, H, W)"),
    (["encoder.hidden=[1,2]"], "encoder.hidden", "valid keys"),
]


@pytest.mark.parametrize(
    ("overrides", "names", "hint"), BAD_INPUTS, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_bad_input_is_one_clear_line(cli, overrides, names, hint):
    result = cli(*overrides) if any("epochs" in o for o in overrides) else cli(*overrides, "trainer.epochs=1")
    assert result.code == 2
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("mtlrun: error: ")
    assert names in lines[0] and hint in lines[0]
    assert "Traceback" not in result.err + result.out


def test_bad_input_through_the_console_script(tmp_path):
    result = run_subprocess("arch=nope", cwd=tmp_path)
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "mtlrun: error: arch=nope is not valid; choose one of: " + result.err.split("choose one of: ")[1].strip()
    ]
    assert "hps" in result.err


def test_config_error_found_by_the_dataset_leaves_no_run_folder(cli):
    result = cli("tasks.names=[zzz]")
    assert result.code == 2 and "zzz" in result.err
    assert list(result.cwd.iterdir()) == []

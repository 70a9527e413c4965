"""Reliability: nothing read from disk is unpickled or evaluated, and a diverging run says so.

The audit walks the AST of every module of the package, so a new ``pickle.load`` or a
``torch.load`` without ``weights_only=True`` fails here before it ships.
"""

from __future__ import annotations

import ast
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import mtlrun
from tests.conftest import TINY

PACKAGE = Path(mtlrun.__file__).parent

#: module.function calls that unpickle (or otherwise run code from) their input
UNSAFE_CALLS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("cPickle", "load"),
    ("dill", "load"),
    ("dill", "loads"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("joblib", "load"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
    ("yaml", "unsafe_load_all"),
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    """``a.b.c`` as ``("a", "b", "c")``; () for anything that is not a plain name chain."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return (node.id, *reversed(parts))
    return ()


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_calls(source: str) -> list[str]:
    """Every call in ``source`` that could unpickle or evaluate data, as ``line: what``."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        where = f"{node.lineno}: {'.'.join(name) or '<call>'}"
        if name in (("eval",), ("exec",), ("builtins", "eval"), ("builtins", "exec"), ("compile",)):
            problems.append(where)
        elif name[-2:] in UNSAFE_CALLS:
            problems.append(where)
        elif name[-2:] == ("torch", "load"):
            flag = _keyword(node, "weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                problems.append(f"{where} without weights_only=True")
        elif name[-2:] in (("yaml", "load"), ("yaml", "load_all")):
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader)[-1:] not in {(s,) for s in SAFE_YAML_LOADERS}:
                problems.append(f"{where} without a safe Loader")
        elif name[-2:] in (("np", "load"), ("numpy", "load")):
            flag = _keyword(node, "allow_pickle")
            if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                problems.append(f"{where} with allow_pickle")
    return problems


def test_the_audit_catches_each_kind_of_unsafe_call():
    source = "\n".join(
        [
            "pickle.load(f)",
            "torch.load(p)",
            "torch.load(p, weights_only=False)",
            "eval(text)",
            "exec(text)",
            "yaml.load(text)",
            "yaml.load(text, Loader=yaml.FullLoader)",
            "yaml.unsafe_load(text)",
            "np.load(p, allow_pickle=True)",
            "pd.read_pickle(p)",
        ]
    )
    assert len(unsafe_calls(source)) == 10
    safe = "torch.load(p, weights_only=True)\nyaml.load(t, Loader=yaml.SafeLoader)\nnp.load(p)\nmodel.eval()\n"
    assert unsafe_calls(safe) == []


def test_nothing_in_the_package_unpickles_or_evaluates():
    found = {
        str(path.relative_to(PACKAGE)): problems
        for path in sorted(PACKAGE.rglob("*.py"))
        if (problems := unsafe_calls(path.read_text(encoding="utf-8")))
    }
    assert found == {}


class _Trap:
    """Unpickling this creates the file ``marker``: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_compare_reads_only_json_and_yaml(tmp_path):
    run = tmp_path / "runs" / "a"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    marker = tmp_path / "unpickled"
    trap = pickle.dumps(_Trap(marker))
    for name in ("checkpoints/last.pt", "summary.pkl", "metrics.pkl"):
        (run / name).write_bytes(trap)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\nx: !!python/object/apply:os.system ['touch unpickled']\n")
    (run / "summary.json").write_text(json.dumps({"status": "completed", "run": {"seed": 0}}))
    code = (
        "import sys\nfrom mtlrun.report.compare import cli\n"
        f"sys.argv = ['mtlrun-compare', {str(tmp_path / 'runs')!r}]\n"
        "try:\n    cli()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "NO-TORCH" in proc.stdout, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "unpickled").exists()


def test_a_diverging_run_ends_diverged_with_one_line(cli):
    result = cli(*TINY, "trainer.lr=1e8", "trainer.optimizer=sgd", "report.baselines=false", "diagnostics.every=0")
    assert result.code == 3
    lines = [line for line in result.err.splitlines() if line.startswith("mtlrun:")]
    assert len(lines) == 1 and "run diverged:" in lines[0] and "non-finite at step" in lines[0], result.err
    assert "Traceback" not in result.err
    summary = result.summary()
    assert summary["status"] == "diverged"
    assert set(summary["divergence"]) == {"step", "epoch", "tasks", "gradient", "policy"}
    assert summary["divergence"]["epoch"] == 1


@pytest.mark.slow
def test_a_diverged_job_does_not_stop_its_sweep(tmp_path):
    from tests.conftest import run_subprocess

    result = run_subprocess(
        "-m", *TINY, "trainer.optimizer=sgd", "trainer.lr=1e8,1e-2", "report.baselines=false", cwd=tmp_path
    )
    statuses = sorted(json.loads(p.read_text())["status"] for p in tmp_path.glob("multirun/*/*/*/summary.json"))
    assert statuses == ["completed", "diverged"], result.err
    sweep = json.loads(next(tmp_path.glob("multirun/*/*/sweep_summary.json")).read_text())
    assert "diverged" in json.dumps(sweep)


@pytest.mark.parametrize("victim", ["checkpoints/last.pt", "metrics.jsonl"])
def test_a_full_disk_keeps_the_previous_files_and_fails_the_run(cli, monkeypatch, victim):
    """The second write of ``victim`` hits ENOSPC: the first version stays, the run ends ``failed``."""
    import errno

    import mtlrun.results.atomic as outputs

    real = outputs._atomic
    writes: dict[str, int] = {}
    kept: dict[str, bytes] = {}

    def flaky(path, write, mode="w"):
        name = path.relative_to(path.parent.parent).as_posix() if path.parent.name == "checkpoints" else path.name
        writes[name] = writes.get(name, 0) + 1
        if name == victim and writes[name] == 2:
            kept[name] = path.read_bytes()

            def full(handle):
                handle.write("x" if "b" not in mode else b"x")
                raise OSError(errno.ENOSPC, "No space left on device")

            return real(path, full, mode)
        return real(path, write, mode)

    monkeypatch.setattr(outputs, "_atomic", flaky)
    result = cli(*TINY, "trainer.epochs=3", "report.baselines=false", "diagnostics.every=0")
    assert result.code == 1
    lines = [line for line in result.err.strip().splitlines() if line.startswith("mtlrun:")]
    assert len(lines) == 1 and lines[0].startswith("mtlrun: error: could not write")
    assert "No space left on device" in lines[0]
    assert "Traceback" not in result.err
    folder = result.run_dirs()[-1]
    assert (folder / victim).read_bytes() == kept[victim]  # the previous version, untouched
    assert not list(folder.rglob("*.tmp"))
    summary = result.summary()
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert victim.split("/")[-1] in summary["error"]


def test_compare_names_damaged_run_folders_without_a_traceback(tmp_path, capsys):
    from mtlrun.report.compare import main as compare

    cut = tmp_path / "runs" / "cut"
    (cut / ".hydra").mkdir(parents=True)
    (cut / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (cut / "summary.json").write_text('{"status": "compl')
    (cut / "metrics.jsonl").write_text('{"epoch": 1, "split": "train"}\n{"epoch": 2, "spl')
    bare = tmp_path / "runs" / "no_hydra"  # a run folder without .hydra/config.yaml
    bare.mkdir()
    (bare / "summary.json").write_text(json.dumps({"status": "running", "run": {"seed": 1}}))
    (bare / "run.log").write_text("")
    before = {p: p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file()}
    assert compare([str(tmp_path / "runs")]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    text = out + err
    assert "not valid JSON" in text and "summary.json" in text
    assert {p: p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file()} == before

    from mtlrun.results.run_folder import RunFolder

    assert RunFolder(cut).read_metric_rows() == [{"epoch": 1, "split": "train"}]  # up to the half-written line


def _foreign_checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    import torch

    from mtlrun.train.checkpoint import save_checkpoint

    good = folder / "good.pt"
    save_checkpoint(good, model={"w": torch.ones(3)}, optimizer={}, epoch=1)
    data = good.read_bytes()
    cases = {
        "truncated": (data[: len(data) // 2], "truncated or corrupt"),
        "empty": (b"", "truncated or corrupt"),
        "text": (b"hello\n", "truncated or corrupt"),
        "pickle": (pickle.dumps(_Trap(folder / "unpickled")), "not an mtlrun checkpoint"),
    }
    out = {}
    for name, (content, says) in cases.items():
        (folder / name).write_bytes(content)
        out[name] = (folder / name, says)
    torch.save({"state_dict": {}}, folder / "foreign")
    torch.save([1, 2], folder / "list")
    out["foreign"] = (folder / "foreign", "no model, optimizer, epoch")
    out["list"] = (folder / "list", "holds a list")
    out["missing"] = (folder / "missing", "no such file")
    return out


def test_a_damaged_or_foreign_checkpoint_is_one_line(tmp_path):
    from mtlrun.errors import ConfigError
    from mtlrun.train.checkpoint import CheckpointError, load_checkpoint

    assert issubclass(CheckpointError, ConfigError)  # the CLI prints it as one line, exit 2
    damaged = _foreign_checkpoints(tmp_path)
    assert load_checkpoint(tmp_path / "good.pt")["epoch"] == 1
    for name, (path, says) in damaged.items():
        before = path.read_bytes() if path.exists() else None
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message and says in message, (name, message)
        assert (path.read_bytes() if path.exists() else None) == before
    assert not (tmp_path / "unpickled").exists()

"""The bad-input suite: every user mistake gets one line naming the problem, a non-zero exit, no
traceback, and leaves every run folder that existed before exactly as it was.

One table of bad command lines and files. Most cases call the ``mtlrun`` entry point in-process
(fast); the cases marked ``console`` go through the installed console script, as a user would.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import run_subprocess

#: tiny and quick; ``only_cached`` so that a case that wrongly passes never trains baselines
BASE = [
    "dataset=synthetic",
    "dataset.num_samples=300",
    "dataset.input_dim=8",
    "trainer.epochs=1",
    "diagnostics.every=0",
    "report.baselines=only_cached",
]
OLD_RUN = "outputs/old"


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    #: what the one line must contain (the bad key or value, and the valid choices where there are some)
    says: tuple[str, ...]
    console: bool = False  # through the real console script
    tool: str = "mtlrun"  # or mtlrun-compare


def case(id: str, args: str, *says: str, console: bool = False, tool: str = "mtlrun") -> Case:
    return Case(id, tuple(args.split(" ")) if args else (), says, console, tool)


CASES = [
    # wrong types
    case("type-float", "trainer.lr=abc", "trainer.lr=abc", "Float"),
    case("type-int", "trainer.epochs=1.5", "trainer.epochs=1.5", "Integer"),
    case("type-seed", "seed=abc", "seed=abc"),
    case("type-bool", "trainer.deterministic=maybe", "trainer.deterministic=maybe", "bool"),
    case("type-balancer-option", "balancer=cagrad balancer.c=abc", "balancer.c=abc"),
    case("type-list-expected", "tasks.names=t1", "tasks.names=t1"),
    case("type-list-for-float", "trainer.lr=[1,2]", "trainer.lr="),
    # out-of-range values
    case("range-epochs", "trainer.epochs=0", "trainer.epochs=0", ">= 1"),
    case("range-batch", "trainer.batch_size=-4", "trainer.batch_size=-4"),
    case("range-lr", "trainer.lr=0", "trainer.lr=0", "> 0"),
    case("range-weight-decay", "trainer.weight_decay=-0.1", "trainer.weight_decay=-0.1"),
    case("range-alpha", "report.alpha=1.5", "report.alpha=1.5", "(0, 1)"),
    case("range-checkpoint", "trainer.checkpoint_every=-1", "trainer.checkpoint_every=-1"),
    case("range-workers", "loader.num_workers=-1", "loader.num_workers=-1"),
    case("range-diagnostics", "diagnostics.every=-5", "diagnostics.every=-5"),
    case("range-nan-skips", "trainer.max_nan_skips=0", "trainer.max_nan_skips=0"),
    case("range-min-seeds", "report.min_seeds=1", "report.min_seeds=1"),
    case("range-dataset", "dataset.correlation=2", "dataset.correlation=2"),
    # non-finite numbers
    case("nan-lr", "trainer.lr=nan", "trainer.lr=nan"),
    case("inf-lr", "trainer.lr=inf", "trainer.lr=inf", "finite"),
    case("nan-clip", "trainer.grad_clip=nan", "trainer.grad_clip=nan", "finite"),
    case("nan-alpha", "report.alpha=nan", "report.alpha=nan"),
    # unknown groups, choices and keys
    case("group-arch", "arch=nope", "arch=nope", "choose one of", "hps"),
    case("group-balancer", "balancer=nope", "balancer=nope", "choose one of", "pcgrad"),
    case("group-dataset", "dataset=nope", "dataset=nope", "choose one of", "synthetic"),
    case("group-schedule", "schedule=nope", "schedule=nope", "curriculum"),
    case("group-launcher", "hydra/launcher=nope", "hydra/launcher=nope", "joblib"),
    case("choice-optimizer", "trainer.optimizer=rmsprop", "trainer.optimizer=rmsprop", "adam, adamw, sgd"),
    case("choice-device", "trainer.device=tpu", "trainer.device=tpu", "cpu"),
    case("choice-on-nan", "trainer.on_nan=ignore", "trainer.on_nan=ignore", "skip, stop"),
    case("choice-correction", "report.correction=bonferroni", "report.correction=bonferroni", "holm"),
    case("choice-loader", "loader.mode=disk", "loader.mode=disk", "memory"),
    case("key-top", "nope=1", "unknown key 'nope'", "valid keys", "trainer"),
    case("key-trainer", "trainer.nope=1", "unknown key 'trainer.nope'", "lr"),
    case("key-added", "+trainer.amp=true", "unknown key 'trainer.amp'", "lr"),
    case("key-balancer", "balancer=cagrad balancer.nope=1", "balancer.nope"),
    # malformed override syntax (checked before Hydra starts)
    case("syntax-no-equal", "trainer.lr", "malformed override 'trainer.lr'", "missing '='", console=True),
    case("syntax-no-key", "=3", "malformed override '=3'", "no key"),
    case("syntax-bracket", "tasks.names=[t1,t2", "malformed override 'tasks.names=[t1,t2'"),
    case("syntax-double-dot", "trainer..lr=1", "malformed override 'trainer..lr=1'", "position 8"),
    case("syntax-two-equals", "a=b=c", "malformed override 'a=b=c'"),
    case("syntax-unknown-flag", "--nope", "unknown option '--nope'", "--multirun", console=True),
    case("syntax-flag-value", "--cfg", "--cfg needs a value"),
    case("syntax-sweep-without-m", "trainer.lr=0.01,0.1", "trainer.lr=0.01,0.1", "--multirun"),
    # unresolvable interpolations
    case("interp-missing", "trainer.lr=${nope}", "trainer.lr=${nope}", "nope"),
    case("interp-in-list", "tasks.names=[t1,${nope}]", "tasks.names[1]=${nope}"),
    # task sets and task weights
    case("tasks-empty", "tasks.names=[]", "tasks.names is empty", "t1, t2"),
    case("tasks-duplicated", "tasks.names=[t1,t1]", "lists a task twice"),
    case("tasks-unknown", "tasks.names=[nope]", "tasks.names=nope", "t1, t2"),
    case("weights-unknown-task", "balancer=fixed tasks.weights={nope:1}", "nope", "t1, t2"),
    case("weights-unused", "tasks.weights={t1:1}", "tasks.weights", "balancer=fixed"),
    case("weights-not-mapping", "tasks.weights=3", "tasks.weights=3", "mapping"),
    case("primary-metric", "tasks.primary={t1:nope}", "tasks.primary.t1=nope", "mae"),
    case("objective", "objective=t1/nope", "objective=t1/nope", "primary_mean"),
    # architecture, encoder and balancer parameters
    case("arch-experts", "arch=mmoe arch.num_experts=0", "arch.num_experts=0"),
    case("balancer-negative", "balancer=cagrad balancer.c=-1", "balancer.c=-1"),
    case("balancer-zero-temperature", "balancer=dwa balancer.temperature=0", "balancer.temperature=0"),
    case("encoder-width", "encoder=mlp encoder.hidden=[0]", "encoder.hidden[0]=0"),
    # output folders and files
    case("out-file", "hydra.run.dir=afile", "hydra.run.dir=afile", "is a file"),
    case("out-under-file", "hydra.run.dir=afile/sub", "hydra.run.dir=afile/sub", "cannot be created"),
    case("out-holds-run", f"hydra.run.dir={OLD_RUN}", "already holds a run", "run.overwrite=true"),
    case("sweep-holds-run", f"-m hydra.sweep.dir={OLD_RUN}", "already holds a sweep"),
    case("cache-dir-file", "report.cache_dir=afile", "report.cache_dir=afile", "is a file"),
    case("pool-from-missing", "report.pool_from=[nowhere]", "report.pool_from", "nowhere"),
    case("cache-corrupt", "report.cache_dir=badcache", "badcache/", "not valid JSON"),
    case("cache-foreign", "report.cache_dir=listcache", "listcache/", "holds a JSON list"),
    # mtlrun-compare
    case("compare-not-a-folder", "nowhere", "not a folder: nowhere", tool="mtlrun-compare"),
    case("compare-no-runs", "afolder", "no run folders under afolder", tool="mtlrun-compare"),
]
if not torch.cuda.is_available():
    CASES.append(case("device-cuda", "trainer.device=cuda", "trainer.device=cuda", "trainer.device=cpu"))


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A launch folder with a finished run (and its baselines), a file, an empty folder and bad caches."""
    from mtlrun.cli.main import main

    where = tmp_path_factory.mktemp("bad_inputs")
    args = [a for a in BASE if not a.startswith("report.baselines")]
    with pytest.MonkeyPatch.context() as mp:  # in-process: the real entry point, without a new interpreter
        mp.chdir(where)
        mp.setattr(sys, "argv", ["mtlrun", f"hydra.run.dir={OLD_RUN}", *args, "report.baselines=true"])
        mp.delenv("HYDRA_FULL_ERROR", raising=False)
        main()
        os.environ.pop("HYDRA_FULL_ERROR", None)
    assert (where / OLD_RUN / "summary.json").is_file()
    (where / "afile").write_text("not a folder\n")
    (where / "afolder").mkdir()
    for name, text in (("badcache", '{"status": "compl'), ("listcache", "[1, 2]")):
        (where / name).mkdir()
        for good in (where / "outputs" / "baselines").glob("*.json"):
            (where / name / good.name).write_text(text)
    return where


def _compare(args: tuple[str, ...], where: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from mtlrun.report.compare import main as compare

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(where)
        code = compare(list(args))
    return code, capsys.readouterr().err.replace("mtlrun-compare: ", "mtlrun: ")


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_line(bad: Case, workspace: Path, cli, capsys):
    assert len(CASES) >= 40
    before = fingerprint(workspace / OLD_RUN)
    caches = {name: fingerprint(workspace / name) for name in ("badcache", "listcache")}
    if bad.tool == "mtlrun-compare":
        code, err = _compare(bad.args, workspace, capsys)
    else:
        result = (
            run_subprocess(*bad.args, *BASE, cwd=workspace) if bad.console else cli(*BASE, *bad.args, cwd=workspace)
        )
        code, err = result.code, result.err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mtlrun: error: ")
    for text in bad.says:
        assert text in lines[0], lines[0]
    assert "Traceback" not in err
    assert fingerprint(workspace / OLD_RUN) == before
    assert {name: fingerprint(workspace / name) for name in caches} == caches  # bad files are never written
    assert not list(workspace.glob("outputs/*-*-*")), "a refused run left its folder behind"

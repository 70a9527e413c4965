"""A run imports what it needs when it needs it: the run path does not load the heavy libraries.

Checked in a fresh interpreter (``sys.modules`` of this one already holds whatever other tests
imported). No wall time is asserted: timings belong to ``make bench``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("scipy", "sklearn", "matplotlib", "pandas", "torchmetrics", "PIL")


def loaded_after(statement: str) -> dict[str, bool]:
    code = f"import json, sys\n{statement}\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", ["import mtlrun.train.run", "import mtlrun.cli.main"])
def test_run_path_imports_no_heavy_library(statement):
    loaded = loaded_after(statement)
    assert not any(loaded.values()), f"{statement} loaded {[m for m, yes in loaded.items() if yes]}"


def test_default_dataset_and_a_solver_balancer_build_without_sklearn_or_pandas():
    # building multi_digits reads scikit-learn's CSV directly; building mgda does not solve anything yet
    loaded = loaded_after(
        "from mtlrun.data import build_dataset\n"
        "from mtlrun.balancers import BALANCERS\n"
        "build_dataset({'name': 'multi_digits'})\n"
        "BALANCERS.build('mgda', {'name': 'mgda'}, tasks=['a', 'b'])"
    )
    assert not loaded["sklearn"] and not loaded["pandas"] and not loaded["scipy"]


def test_lazy_module_imports_on_first_attribute():
    loaded = loaded_after("from mtlrun.lazy import lazy_module\nlinalg = lazy_module('scipy.linalg')")
    assert not loaded["scipy"]
    loaded = loaded_after("from mtlrun.lazy import lazy_module\nassert lazy_module('scipy.linalg').norm([3, 4]) == 5")
    assert loaded["scipy"]


def test_deterministic_mode_does_not_load_the_compiler():
    # torch.use_deterministic_algorithms imports torch._inductor (and torch._dynamo): seconds at start-up
    code = (
        "import sys, torch\n"
        "from mtlrun.train.seeding import seed_everything\n"
        "seed_everything(0, deterministic=True)\n"
        "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),"
        " 'torch._dynamo' in sys.modules, 'torch._inductor' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True", "True", "False", "False"]


def test_compiling_sets_the_compilers_deterministic_flag():
    pytest.importorskip("torch._inductor.config")
    code = (
        "import torch\n"
        "from mtlrun.train.seeding import seed_everything\n"
        "from mtlrun.train.devices import compile_model\n"
        "seed_everything(0, deterministic=True)\n"
        "compile_model(torch.nn.Sequential(torch.nn.Linear(2, 2)))\n"
        "import torch._inductor.config as c\n"
        "print(c.deterministic)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True"

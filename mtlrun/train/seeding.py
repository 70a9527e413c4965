"""Seeding: every RNG a run draws from, set from one seed."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        set_deterministic_algorithms()
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False


#: what ``torch.use_deterministic_algorithms`` touches, by the names its code reads: the inductor
#: compiler's flag and the global switch this module sets directly. A torch whose function reads
#: anything else does more than this shortcut knows, so the public function is used instead.
PUBLIC_FUNCTION_NAMES = frozenset(
    {"torch._inductor.config", "_inductor", "config", "deterministic", "_C", "_set_deterministic_algorithms"}
)


def deterministic_shortcut_problem() -> str | None:
    """Why the shortcut of :func:`set_deterministic_algorithms` does not fit this torch, or None."""
    if not callable(getattr(torch._C, "_set_deterministic_algorithms", None)):
        return "torch._C._set_deterministic_algorithms is missing"
    code = getattr(torch.use_deterministic_algorithms, "__code__", None)
    if code is None:
        return "torch.use_deterministic_algorithms is not a Python function"
    extra = set(code.co_names) - PUBLIC_FUNCTION_NAMES
    if extra:
        return f"torch.use_deterministic_algorithms also reads {', '.join(sorted(extra))}"
    return None


#: None where the shortcut fits this torch (checked once, at import)
SHORTCUT_PROBLEM = deterministic_shortcut_problem()


def set_deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its start-up cost.

    torch's function also sets the inductor compiler's ``deterministic`` flag, importing
    ``torch._inductor`` and ``torch._dynamo`` to do so (about 2 s of a CPU run's start-up, for a
    run that never compiles). The flag is set here only when inductor is already loaded;
    :func:`mtlrun.train.devices.compile_model` sets it when it loads the compiler.

    The global switch is private (``torch._C``): it is used only where the public function does
    exactly these two things (:data:`SHORTCUT_PROBLEM`), and its effect is read back through the
    public getters; otherwise the public function does the work.
    """
    if SHORTCUT_PROBLEM is None:
        torch._C._set_deterministic_algorithms(True, warn_only=True)
        if torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled():
            inductor_config = sys.modules.get("torch._inductor.config")
            if inductor_config is not None:
                inductor_config.deterministic = True  # type: ignore[attr-defined]
            return
    torch.use_deterministic_algorithms(True, warn_only=True)

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


def set_deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its start-up cost.

    torch's function also sets the inductor compiler's ``deterministic`` flag, importing
    ``torch._inductor`` and ``torch._dynamo`` to do so (about 2 s of a CPU run's start-up, for a
    run that never compiles). The flag is set here only when inductor is already loaded;
    :func:`mtlrun.train.devices.compile_model` sets it when it loads the compiler.
    """
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:
        inductor_config.deterministic = True  # type: ignore[attr-defined]

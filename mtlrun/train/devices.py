"""Where and how the step runs: torch's intra-op threads (``trainer.threads``) and
``torch.compile`` of the model (``trainer.compile``).

Threads. A sweep run by the joblib launcher runs ``n_jobs`` jobs at once on one machine; if each
used every core they would oversubscribe them and all slow down. ``auto`` therefore gives each job
``cores // n_jobs`` threads in such a sweep and otherwise leaves torch's own setting (every core,
or ``OMP_NUM_THREADS``) alone; ``N`` sets exactly N.

Compile. The model's submodules (encoder, experts, heads, ...) are compiled in place with
``nn.Module.compile``, so parameter names, ``state_dict`` keys and checkpoints are those of the
uncompiled model, and every path the balancers use still works: the plain forward, the split
``encode``/``decode`` of ``rep_grad`` (both call the compiled submodules), per-task
``autograd.grad`` with ``retain_graph`` (AOTAutograd's donated buffers are switched off, since a
retained graph must keep its saved tensors), and ``functional_call`` of lookahead methods.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from mtlrun.errors import ConfigError


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_threads(value: Any, parallel_jobs: int | None = None) -> int | None:
    """The intra-op threads for ``trainer.threads=value``: an int, or None to leave torch's setting.

    ``parallel_jobs`` is the number of jobs a multi-worker sweep runs at once (None or 1 otherwise;
    joblib's ``-1`` means one per core).
    """
    text = str(value).strip().lower()
    if text == "auto":
        if parallel_jobs is None or parallel_jobs == 1:
            return None
        jobs = cores() if parallel_jobs < 0 else parallel_jobs
        return max(1, cores() // jobs)
    try:
        threads = int(text)
    except ValueError:
        raise ConfigError(f"trainer.threads={value} must be auto or a number of threads >= 1") from None
    if threads < 1:
        raise ConfigError(f"trainer.threads={value} must be auto or a number of threads >= 1")
    return threads


def apply_threads(value: Any, parallel_jobs: int | None = None) -> int:
    """Set torch's intra-op threads as ``trainer.threads`` asks; return the number in use."""
    threads = resolve_threads(value, parallel_jobs)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def compile_model(model: nn.Module) -> list[str]:
    """Compile ``model``'s submodules in place (see the module docstring); return their names.

    Containers (``ModuleDict``/``ModuleList``, which have no forward) are compiled item by item.
    """
    if not hasattr(torch, "compile"):
        raise ConfigError("trainer.compile=true needs torch >= 2.0")
    try:  # per-task autograd.grad retains the graph: its saved tensors must not be donated
        import torch._functorch.config as functorch_config

        if hasattr(functorch_config, "donated_buffer"):
            functorch_config.donated_buffer = False
    except ImportError:
        pass
    import torch._inductor.config as inductor_config

    # What torch.use_deterministic_algorithms would have set (mtlrun.train.seeding skips it).
    inductor_config.deterministic = torch.are_deterministic_algorithms_enabled()
    compiled: list[str] = []
    for name, child in model.named_children():
        if isinstance(child, (nn.ModuleDict, nn.ModuleList)):
            for key, item in child.named_children():
                item.compile()
                compiled.append(f"{name}.{key}")
        else:
            child.compile()
            compiled.append(name)
    return compiled

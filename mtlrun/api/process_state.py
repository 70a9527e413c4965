"""What a run changes in its process, put back when ``mtlrun.fit`` or ``mtlrun.sweep`` returns.

The command's process ends with its run; a Python caller's goes on, often into the next run of a
loop. A run changes, as the command does: the root logger (Hydra's ``job_logging`` puts the
console and ``run.log`` handlers in place of the caller's), torch's intra-op threads
(``trainer.threads``), its deterministic-algorithms switch and cuDNN's benchmark flag
(``trainer.deterministic``), the global random generators (``seed``) and an environment variable
(``CUBLAS_WORKSPACE_CONFIG``). Left changed they would leak into the next run of the loop, which
would then differ from the same run started by the command (a run after one with
``trainer.threads=4`` would add up in another order), and into the caller's own code. So all of
them are restored, and the run's own log handlers are closed (``run.log`` is complete when ``fit``
returns). Python's ``logging.config``, which Hydra configures the run's logging with, closes every
handler of the process, the caller's too; those are kept out of its reach for the run. The working
folder and ``sys.argv`` are restored too, though a run changes neither (``hydra.job.chdir=false``;
nothing reads ``sys.argv``).
"""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoggingState:
    """The root logger's handlers and level, every existing logger's settings, and the handler registry."""

    root_handlers: list[logging.Handler]
    root_level: int
    loggers: dict[str, tuple[int, bool, bool, list[logging.Handler]]]
    handler_refs: list[Any] = field(default_factory=list)

    @classmethod
    def capture(cls) -> LoggingState:
        root = logging.getLogger()
        loggers = {
            name: (logger.level, logger.propagate, logger.disabled, list(logger.handlers))
            for name, logger in list(logging.Logger.manager.loggerDict.items())
            if isinstance(logger, logging.Logger)
        }
        state = cls(list(root.handlers), root.level, loggers)
        registry = getattr(logging, "_handlerList", None)  # what logging.config.dictConfig closes
        if isinstance(registry, list):
            state.handler_refs = list(registry)
            del registry[:]
        return state

    def restore(self) -> None:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h not in self.root_handlers]:  # the run's: console, run.log
            root.removeHandler(handler)
            try:
                handler.flush()
                handler.close()
            except Exception:  # a handler that cannot flush must not hide the run's own outcome
                pass
        for handler in self.root_handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(self.root_level)
        for name, (level, propagate, disabled, handlers) in self.loggers.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled
            logger.handlers[:] = handlers
        registry = getattr(logging, "_handlerList", None)
        if isinstance(registry, list):
            registry[:0] = [ref for ref in self.handler_refs if ref() is not None and ref not in registry]


@dataclass
class TorchState:
    """torch's settings a run may change, and the global random generators it seeds."""

    threads: int
    deterministic: bool
    warn_only: bool
    cudnn_benchmark: bool
    torch_rng: Any
    python_rng: Any
    numpy_rng: Any
    cuda_rng: Any = None

    @classmethod
    def capture(cls) -> TorchState:
        import numpy as np
        import torch

        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        return cls(
            threads=torch.get_num_threads(),
            deterministic=torch.are_deterministic_algorithms_enabled(),
            warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
            cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
            torch_rng=torch.get_rng_state(),
            python_rng=random.getstate(),
            numpy_rng=np.random.get_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if cuda else None,
        )

    def restore(self) -> None:
        import numpy as np
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        if (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) != (
            self.deterministic,
            self.warn_only,
        ):
            # as mtlrun.train.seeding sets it: torch.use_deterministic_algorithms would import the compiler
            torch._C._set_deterministic_algorithms(self.deterministic, warn_only=self.warn_only)
            inductor_config = sys.modules.get("torch._inductor.config")
            if inductor_config is not None:
                inductor_config.deterministic = self.deterministic  # type: ignore[attr-defined]
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.set_rng_state(self.torch_rng)
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


def restore_environment(saved: dict[str, str]) -> None:
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextmanager
def kept_process_state() -> Iterator[None]:
    """Within the block a run may change the process as the command's run does; afterwards it is as before."""
    cwd, argv, environment = os.getcwd(), list(sys.argv), dict(os.environ)
    torch_state = TorchState.capture()
    logging_state = LoggingState.capture()
    try:
        yield
    finally:
        logging_state.restore()
        torch_state.restore()
        restore_environment(environment)
        if sys.argv != argv:
            sys.argv[:] = argv
        if os.getcwd() != cwd:
            os.chdir(cwd)

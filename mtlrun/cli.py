"""Entry points. Thin: compose the config with Hydra, then hand over to ``mtlrun.train``.

torch is imported only inside the task function, so ``--help``, ``--cfg`` and tab completion
stay fast. User mistakes (bad group choice, unknown key, wrong type, out-of-range value) are
printed as one line naming the key and the valid choices, with exit status 2; set
``HYDRA_FULL_ERROR=1`` for the full traceback.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from mtlrun.config import register_schema
from mtlrun.errors import ConfigError

register_schema()


@hydra.main(version_base="1.3", config_path="pkg://mtlrun.conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from mtlrun.train.run import run_from_hydra

    return run_from_hydra(cfg)


def describe_error(ex: BaseException) -> str:
    """One line for a configuration error raised by Hydra, OmegaConf or mtlrun itself."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

    if isinstance(ex, ConfigError):
        return str(ex)
    if isinstance(ex, MissingConfigException):
        missing = ex.missing_cfg_file or ""
        if "/" in missing:
            group, _, value = missing.rpartition("/")
            options = ", ".join(sorted(ex.options or []))
            return f"{group}={value} is not valid; choose one of: {options}"
        return str(ex).splitlines()[0]
    cause = ex.__cause__ if ex.__cause__ is not None else ex
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        key = cause.full_key or cause.key
        parent = cause.parent_node
        valid = ", ".join(sorted(str(k) for k in parent.keys())) if parent is not None else ""
        return f"unknown key '{key}'" + (f"; valid keys: {valid}" if valid else "")
    if isinstance(cause, ValidationError):
        first = cause.msg.splitlines()[0] if cause.msg else str(cause).splitlines()[0]
        return f"{cause.full_key}={cause.value}: {first}"
    if isinstance(cause, OmegaConfBaseException):
        return f"{cause.full_key}: {str(cause).splitlines()[0]}" if cause.full_key else str(cause).splitlines()[0]
    text = " ".join(line.strip() for line in str(ex).splitlines() if line.strip())
    return f"{type(ex).__name__}: {text}" if not text.startswith(type(ex).__name__) else text


def main() -> None:
    """The ``mtlrun`` console script."""
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        from mtlrun.help import render_help

        try:
            print(render_help(), flush=True)
        except BrokenPipeError:  # mtlrun --help | head: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    user_wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; we print one line below
    try:
        _hydra_main()
    except KeyboardInterrupt:
        print("mtlrun: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as ex:
        if user_wants_traceback:
            raise
        from mtlrun.outputs import WriteFailed

        if isinstance(ex, WriteFailed):  # disk full, no permission: the system's reason says it all
            print(f"mtlrun: error: {ex}", file=sys.stderr)
            sys.exit(1)
        user_error = _is_user_error(ex)
        print(f"mtlrun: error: {describe_error(ex)}", file=sys.stderr)
        if not user_error:
            print("(set HYDRA_FULL_ERROR=1 for the full traceback)", file=sys.stderr)
        sys.exit(2 if user_error else 1)


def _is_user_error(ex: BaseException) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(ex, (ConfigError, HydraException, OmegaConfBaseException)) or isinstance(
        ex.__cause__, OmegaConfBaseException
    )

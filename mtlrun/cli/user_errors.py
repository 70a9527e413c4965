"""How the command words a user's mistake: one line naming the key (exit status 2), apart from a
failure (exit status 1). Used by the entry point, the run folder's guard and the Python API."""

from __future__ import annotations

from mtlrun.errors import ConfigError


def describe_error(ex: BaseException) -> str:
    """One line for a configuration error raised by Hydra, OmegaConf or mtlrun itself."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

    from mtlrun.loggers.base import TrackerFailed

    if isinstance(ex, (ConfigError, TrackerFailed)):
        return str(ex)
    if isinstance(ex.__cause__, ConfigError):  # raised while Hydra loaded a plugin's node
        return str(ex.__cause__)
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


def is_user_error(ex: BaseException) -> bool:
    """A mistake in the command line or the configs (exit status 2), as opposed to a failure (1)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(ex, (ConfigError, HydraException, OmegaConfBaseException)) or isinstance(
        ex.__cause__, (OmegaConfBaseException, ConfigError)
    )

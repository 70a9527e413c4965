"""User-facing errors: one line, naming the bad key or value and the valid choices."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user mistake in the configuration. The CLI prints it as one line and exits with status 2."""


def choices_error(key: str, value: object, choices: list[str] | tuple[str, ...]) -> ConfigError:
    """Build the standard 'bad choice' error: ``key=value`` is not one of ``choices``."""
    return ConfigError(f"{key}={value!s} is not valid; choose one of: {', '.join(sorted(map(str, choices)))}")

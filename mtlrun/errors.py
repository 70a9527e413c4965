"""User-facing errors: one line, naming the bad key or value and the valid choices."""

from __future__ import annotations

#: exit statuses of the ``mtlrun`` command; the Python API (``mtlrun.fit``) raises an error carrying each
FAILED_EXIT = 1  # any other failure
CONFIG_EXIT = 2  # a configuration error (:class:`ConfigError`)
DIVERGED_EXIT = 3  # a single run that diverged


class ConfigError(ValueError):
    """A user mistake in the configuration. The CLI prints it as one line and exits with status 2."""

    exit_code = CONFIG_EXIT


def choices_error(key: str, value: object, choices: list[str] | tuple[str, ...]) -> ConfigError:
    """Build the standard 'bad choice' error: ``key=value`` is not one of ``choices``."""
    return ConfigError(f"{key}={value!s} is not valid; choose one of: {', '.join(sorted(map(str, choices)))}")

"""The command's Hydra application, built for Python callers as ``@hydra.main`` builds it; and ``compose``.

``mtlrun`` is ``@hydra.main(config_path=CONFIG_PATH, config_name=CONFIG_NAME, version_base=VERSION_BASE)``
(:mod:`mtlrun.cli.main`). For a run, Hydra (1.3, ``hydra._internal.utils._run_hydra``) derives the config
search path from that ``config_path`` and the job name from the task function's module, creates one
:class:`~hydra._internal.hydra.Hydra` and makes it the global instance, adds ``hydra.mode`` to the
overrides (``_run_app``), calls ``Hydra.run`` (``Hydra.multirun`` with ``-m``), and clears the global
instance at the end. :func:`hydra_app` and :func:`with_run_mode` do the same steps without reading
``sys.argv``, and give the global instance back as they found it, so a Python caller's own
``hydra.initialize`` context survives a run.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, open_dict, read_write

from mtlrun.errors import ConfigError

if TYPE_CHECKING:
    from hydra._internal.hydra import Hydra

#: the command-line forms of a sweep
MULTIRUN_FLAGS = ("-m", "--multirun")


@contextmanager
def hydra_app() -> Iterator[Hydra]:
    """The global Hydra instance of the ``mtlrun`` command, for the duration of the block."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_automatic_config_search_path,
        detect_calling_file_or_module_from_task_function,
        detect_task_name,
    )
    from hydra.core.global_hydra import GlobalHydra

    from mtlrun.cli import main as cli

    calling_file, calling_module = detect_calling_file_or_module_from_task_function(cli._hydra_main)
    search_path = create_automatic_config_search_path(calling_file, calling_module, cli.CONFIG_PATH)
    global_hydra = GlobalHydra.instance()
    previous = global_hydra.hydra
    global_hydra.clear()
    try:
        yield Hydra.create_main_hydra2(
            task_name=detect_task_name(calling_file, calling_module), config_search_path=search_path
        )
    finally:
        global_hydra.clear()
        global_hydra.hydra = previous


def checked_overrides(overrides: Sequence[str] | None) -> list[str]:
    """``overrides`` checked as the command checks its command line (one-line :class:`ConfigError`),
    with ``resume=FOLDER`` replaced by the folder's own command line (which starts with ``-m`` for a sweep)."""
    return resume_overrides(overrides)[0]


def resume_overrides(overrides: Sequence[str] | None) -> tuple[list[str], Path | None]:
    """:func:`checked_overrides` and the folder ``resume=`` names (None without one), which the run
    is given through :func:`mtlrun.cli.resume.resuming_folder`."""
    from mtlrun.cli.main import check_command_line
    from mtlrun.cli.resume import rewrite_argv

    if overrides is None:
        return [], None
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"overrides must be a list of strings such as ['trainer.epochs=1'], not {overrides!r}")
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise ConfigError(
            f"'{flags[0]}' is a command-line flag; give overrides only (key=value, group=choice, +key=value, "
            "~key); a sweep is mtlrun.sweep(overrides=[...])"
        )
    return rewrite_argv(check_command_line(list(overrides)))


def sweep_overrides(overrides: Sequence[str]) -> list[str]:
    """Those of ``overrides`` that sweep (``seed=0,1,2``, ``lr=range(...)``, ``x=choice(...)``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    return [o for o in overrides if parser.parse_override(o).is_sweep_override()]


def config_error(ex: BaseException) -> ConfigError | None:
    """The one-line :class:`ConfigError` of a mistake in the overrides or the configs, as the command
    words it (exit status 2), or None when ``ex`` is not one."""
    from mtlrun.cli.user_errors import describe_error, is_user_error

    if isinstance(ex, ConfigError):
        return ex
    return ConfigError(describe_error(ex)) if is_user_error(ex) else None


def with_run_mode(hydra: Hydra, overrides: list[str], multirun: bool) -> list[str]:
    """``overrides`` with the ``hydra.mode`` Hydra adds to them before a run or a sweep.

    Hydra reads the mode a config sets by composing the whole config once more; as the command
    does (:func:`mtlrun.cli.main.skip_mode_probe`), that probe runs only when an override could set it.
    """
    from hydra.types import RunMode

    from mtlrun.cli.main import CONFIG_NAME, MODE_SOURCES

    probe = any(o.startswith(MODE_SOURCES) for o in overrides)
    mode = hydra.get_mode(config_name=CONFIG_NAME, overrides=overrides) if probe else None
    if mode is None:
        return [*overrides, f"hydra.mode={'MULTIRUN' if multirun else 'RUN'}"]
    if multirun and mode == RunMode.RUN:
        warnings.warn(
            "\n\tRunning Hydra app with --multirun, overriding with `hydra.mode=MULTIRUN`.", UserWarning, stacklevel=3
        )
        return [*overrides, "hydra.mode=MULTIRUN"]
    if not multirun and mode == RunMode.MULTIRUN:
        raise ConfigError("the config sets hydra.mode=MULTIRUN; run it as a sweep: mtlrun.sweep(overrides=[...])")
    return overrides


def compose_in(hydra: Hydra, overrides: list[str]) -> DictConfig:
    """The config a run with ``overrides`` is given, its ``hydra`` node included; a :class:`ConfigError` for a
    mistake in them."""
    from hydra.types import RunMode

    from mtlrun.cli.main import CONFIG_NAME

    try:
        return hydra.compose_config(
            config_name=CONFIG_NAME, overrides=overrides, run_mode=RunMode.RUN, with_log_configuration=False
        )
    except Exception as ex:
        error = config_error(ex)
        if error is None:
            raise
        raise error from ex


def job_config(config: DictConfig) -> DictConfig:
    """``config`` without its ``hydra`` node: what the task function is given (Hydra's ``run_job``)."""
    job = copy.deepcopy(config)
    with read_write(job), open_dict(job):
        job.pop("hydra", None)
    return job


def compose(overrides: Sequence[str] | None = None) -> DictConfig:
    """The config ``mtlrun OVERRIDES...`` would run (``mtlrun --cfg job``), checked as a run checks it
    before its folder exists; a one-line :class:`ConfigError` for any mistake.

    The result is a struct-mode DictConfig: change a value (``cfg.trainer.epochs = 3``) and run it
    with ``mtlrun.fit(cfg)``; an unknown key is refused as on the command line.
    """
    from mtlrun.cli.folder_guard import check_settings

    args = [a for a in checked_overrides(overrides) if a not in MULTIRUN_FLAGS]
    with hydra_app() as hydra:
        job = job_config(compose_in(hydra, args))
    check_settings(job)
    return job


def is_hydra_override(override: str) -> bool:
    """An override of Hydra's own settings (``hydra.run.dir=...``, ``hydra/job_logging=...``), not the run's."""
    key = override.lstrip("+~").split("=", 1)[0]
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def container(config: DictConfig) -> dict[str, Any]:
    """``config`` as plain data, interpolations kept (``${...}`` unresolved)."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(config, resolve=False)
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}


def plain(config: Any) -> dict[str, Any]:
    """A DictConfig or a mapping as plain data without a ``hydra`` node, interpolations kept."""
    from collections.abc import Mapping

    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(config, (DictConfig, Mapping)):
        raise ConfigError(
            f"a config must be a DictConfig or a mapping (from mtlrun.compose), not {type(config).__name__}"
        )
    try:
        data = container(config if isinstance(config, DictConfig) else OmegaConf.create(dict(config)))
    except OmegaConfBaseException as ex:
        raise ConfigError(f"the config cannot be read as a Hydra config: {str(ex).splitlines()[0]}") from None
    data.pop("hydra", None)
    return data

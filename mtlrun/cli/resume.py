"""``mtlrun resume=FOLDER``: continue a run or a sweep in its own folder with its own saved config.

The command line is rewritten before Hydra sees it: the folder's saved overrides are replayed
(``.hydra/hydra.yaml`` of a run, ``multirun.yaml`` of a sweep, both the task's and Hydra's own,
such as a launcher or sweeper choice) and the run (or sweep) folder is set to FOLDER. ``resume``
itself is not an override Hydra sees, so it never enters the run's recorded overrides or config:
the folder it names is held by :func:`requested` for the duration of the invocation, where the run
folder's guard (:mod:`mtlrun.cli.folder_guard`) makes every check of the resume (the config, the
checkpoint, the epochs, "nothing to resume") before Hydra writes a byte into the folder. The
overrides accepted beside ``resume`` are ``trainer.epochs`` (to extend a finished run) and the number
of data-parallel processes (``trainer.devices``, ``trainer.nodes``: the same update on any number). A
sweep skips its completed jobs, continues the interrupted ones and runs those it had not started.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mtlrun.config.resumable import check_same_config
from mtlrun.errors import ConfigError
from mtlrun.results.run_folder import HYDRA_CONFIG, OVERRIDES

SWEEP_CONFIG = "multirun.yaml"
#: the overrides a resume accepts: more epochs, and another number of data-parallel processes
EPOCHS = "trainer.epochs="
ACCEPTED = (EPOCHS, "trainer.devices=", "trainer.nodes=")
#: Hydra overrides the resume sets itself
OWN_HYDRA_KEYS = ("hydra.run.dir=", "hydra.sweep.dir=")


def quoted(value: str) -> str:
    """``value`` as a single-quoted Hydra override value (any path, with spaces, commas or quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resume_folder(argv: list[str]) -> str | None:
    """The value of ``resume=`` on the command line, if any (the last one, as Hydra takes it)."""
    values = [a.split("=", 1)[1] for a in argv if a.startswith("resume=")]
    return values[-1] if values else None


def _saved_overrides(path: Path) -> tuple[list[str], list[str], str]:
    """The task and Hydra overrides saved in ``path`` (a hydra.yaml or multirun.yaml) and its mode."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        hydra: dict[str, Any] = data["hydra"]
        task, own = hydra["overrides"]["task"], hydra["overrides"]["hydra"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError) as ex:
        raise ConfigError(f"cannot resume: {path} is not a readable Hydra record ({type(ex).__name__})") from None
    if not isinstance(task, list) or not isinstance(own, list):
        raise ConfigError(f"cannot resume: {path} has no list of overrides")
    return [str(x) for x in task], [str(x) for x in own], str(hydra.get("mode") or "RUN")


def rewrite_argv(argv: list[str]) -> tuple[list[str], Path | None]:
    """``(the command line that continues the run or sweep named by resume=, its folder)``; ``argv``
    and None without one; a one-line :class:`ConfigError` for anything that cannot be resumed.
    The command line holds no ``resume=``: give the folder to :func:`resuming_folder`."""
    value = resume_folder(argv)
    if value is None:
        return argv, None
    folder = Path(value).expanduser()
    rest = [a for a in argv if not a.startswith("resume=") and a not in ("-m", "--multirun")]
    epochs = [a for a in rest if a.startswith(ACCEPTED)]
    others = [a for a in rest if not a.startswith(ACCEPTED)]
    if others:
        raise ConfigError(
            f"resume={value} continues the run with its saved config; the only overrides it takes are "
            f"trainer.epochs=N (to train longer) and trainer.devices=N, trainer.nodes=N, not: {' '.join(others)}"
        )
    if not folder.is_dir():
        raise ConfigError(f"resume={value}: no such folder; give a run folder (outputs/...) or a sweep folder")
    folder = folder.resolve()
    if (folder / SWEEP_CONFIG).is_file():
        task, own, _ = _saved_overrides(folder / SWEEP_CONFIG)
        where = f"hydra.sweep.dir={quoted(str(folder))}"
        head = ["-m"]
    elif (folder / HYDRA_CONFIG).is_file() and (folder / OVERRIDES).is_file():
        task, own, mode = _saved_overrides(folder / HYDRA_CONFIG)
        if mode.upper() == "MULTIRUN":
            raise ConfigError(
                f"resume={value} is one job of the sweep {folder.parent}; "
                f"resume the sweep: mtlrun resume={folder.parent}"
            )
        where = f"hydra.run.dir={quoted(str(folder))}"
        head = []
    else:
        raise ConfigError(
            f"resume={value} is not a run or sweep folder (no {HYDRA_CONFIG} and {OVERRIDES}, no {SWEEP_CONFIG})"
        )
    given = tuple(a.split("=", 1)[0] + "=" for a in epochs)
    task = [a for a in task if not a.startswith("resume=") and not (given and a.startswith(given))]
    own = [a for a in own if not a.startswith(OWN_HYDRA_KEYS)]
    return [*head, *task, *epochs, *own, where], folder


#: the folders the current invocation resumes, innermost last (see :func:`resuming_folder`)
_requested: list[Path] = []


@contextmanager
def resuming_folder(folder: Path | None) -> Iterator[None]:
    """Within the block, :func:`requested` is ``folder`` (the run or sweep this invocation resumes)."""
    if folder is not None:
        _requested.append(folder)
    try:
        yield
    finally:
        if folder is not None:
            _requested.pop()


def requested() -> Path | None:
    """The run or sweep folder the current invocation resumes (``resume=FOLDER``), or None."""
    return _requested[-1] if _requested else None


def check_unchanged(config: Any, folder: Path) -> None:
    """Refuse (one line) a resume whose config, composed now from the saved command line, is not the
    one ``folder`` ran with (``.hydra/config.yaml``), before Hydra writes anything into the folder."""
    import yaml
    from omegaconf import OmegaConf

    from mtlrun.results.run_folder import CONFIG

    try:
        saved = yaml.safe_load((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as ex:
        raise ConfigError(f"cannot resume {folder}: {CONFIG} is unreadable ({type(ex).__name__})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"cannot resume {folder}: {CONFIG} is not a config")
    now = OmegaConf.to_container(config, resolve=False)
    assert isinstance(now, dict)
    now.pop("hydra", None)
    check_same_config(saved, now, folder)


def resumes(folder: Path) -> bool:
    """Whether this invocation resumes ``folder`` (the run folder guard lets it re-enter)."""
    wanted = requested()
    return wanted is not None and wanted.expanduser().resolve() == folder.expanduser().resolve()

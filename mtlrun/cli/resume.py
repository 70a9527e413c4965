"""``mtlrun resume=FOLDER``: continue a run or a sweep in its own folder with its own saved config.

The command line is rewritten before Hydra sees it: the folder's saved overrides are replayed
(``.hydra/hydra.yaml`` of a run, ``multirun.yaml`` of a sweep, both the task's and Hydra's own,
such as a launcher or sweeper choice), the run (or sweep) folder is set to FOLDER, and
``resume=FOLDER`` is kept in the config so the run continues from ``checkpoints/last.pt``
instead of starting again. The config composed that way is checked against the one saved in the
checkpoint, so a changed config file is refused rather than silently mixed in. The overrides
accepted beside ``resume`` are ``trainer.epochs`` (to extend a finished run) and the number of
data-parallel processes (``trainer.devices``, ``trainer.nodes``: the same update on any number). A sweep skips its
completed jobs, continues the interrupted ones and runs those it had not started.
"""

from __future__ import annotations

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


def rewrite_argv(argv: list[str]) -> list[str]:
    """The command line that continues the run or sweep named by ``resume=`` (``argv`` unchanged
    without one); a one-line :class:`ConfigError` for anything that cannot be resumed."""
    value = resume_folder(argv)
    if value is None:
        return argv
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
    return [*head, *task, *epochs, *own, where, f"resume={quoted(str(folder))}"]


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


def resumes(config_resume: Any, folder: Path) -> bool:
    """Whether a config's ``resume`` value names ``folder`` (the run folder guard lets it through)."""
    if config_resume in (None, ""):
        return False
    return Path(str(config_resume)).expanduser().resolve() == folder.expanduser().resolve()

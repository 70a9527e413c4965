"""Entry points. Thin: compose the config with Hydra, then hand over to ``mtlrun.train``.

torch is imported only inside the task function, so ``--help``, ``--cfg`` and tab completion
stay fast. User mistakes (bad group choice, unknown key, wrong type, out-of-range value) are
printed as one line naming the key and the valid choices, with exit status 2; set
``HYDRA_FULL_ERROR=1`` for the full traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from mtlrun.cli.user_errors import describe_error, is_user_error
from mtlrun.config.schema import register_schema
from mtlrun.errors import ConfigError

register_schema()

#: where the packaged configs are and which one is primary (the Python API composes them the same way)
CONFIG_PATH = "pkg://mtlrun.conf"
CONFIG_NAME = "config"
VERSION_BASE = "1.3"


@hydra.main(version_base=VERSION_BASE, config_path=CONFIG_PATH, config_name=CONFIG_NAME)
def _hydra_main(cfg: DictConfig) -> float | None:
    from mtlrun.cli.task import run_from_hydra

    return run_from_hydra(cfg)


#: Hydra's command-line flags: those that take no value, and those followed by one
FLAGS = ("--multirun", "-m", "--run", "-r", "--resolve", "--version", "--hydra-help", "--shell-completion", "-sc")
VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")
VALUE_FLAGS += ("--experimental-rerun",)
INFO_FLAGS = ("--info", "-i")
INFO_VALUES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


def check_command_line(args: list[str]) -> list[str]:
    """The command line with Hydra's flags moved before the overrides (Hydra's parser refuses a flag
    after them), or :class:`ConfigError` naming the first malformed override or unknown flag.

    Checked before Hydra starts, so a typo gets one line instead of a usage screen or a parser trace.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    flags, overrides = split_command_line(args)
    parser = OverridesParser.create()
    for arg in overrides:
        try:
            parsed = parser.parse_overrides([arg])[0]
        except OverrideParseException as ex:
            raise ConfigError(f"malformed override '{arg}': {_parse_problem(arg, str(ex))}; {OVERRIDE_FORMS}") from None
        if not parsed.key_or_group:
            raise ConfigError(f"malformed override '{arg}': no key before '='; {OVERRIDE_FORMS}")
    return [*flags, *overrides]


def split_command_line(args: list[str]) -> tuple[list[str], list[str]]:
    """``(Hydra's flags with their values, the overrides)``; :class:`ConfigError` for an unknown flag."""
    flags: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if arg in FLAGS or (name in VALUE_FLAGS and "=" in arg):
            flags.append(arg)
        elif arg in VALUE_FLAGS:
            if i + 1 == len(args):
                raise ConfigError(f"{arg} needs a value")
            flags += args[i : i + 2]
            i += 1
        elif name in INFO_FLAGS:
            flags.append(arg)
            if "=" not in arg and i + 1 < len(args) and args[i + 1] in INFO_VALUES:
                flags.append(args[i + 1])
                i += 1
        elif arg.startswith("-"):  # no override starts with a dash
            valid = ", ".join(sorted({*FLAGS, *VALUE_FLAGS, *INFO_FLAGS, "--help"}))
            raise ConfigError(f"unknown option '{arg}'; valid options: {valid}")
        else:
            overrides.append(arg)
        i += 1
    return flags, overrides


def prepare_components(args: list[str]) -> list[str]:
    """Make the user components the command line chooses composable (see :mod:`mtlrun.plugins.choices`)."""
    from mtlrun.config.schema import builtin_choice
    from mtlrun.plugins.choices import prepare

    flags, overrides = split_command_line(args)
    return [*flags, *prepare(flags, overrides, builtin_choice)]


OVERRIDE_FORMS = "write key=value, group=choice, +key=value or ~key (quote values with spaces or brackets)"


def _parse_problem(arg: str, message: str) -> str:
    """Hydra's parser message as a short phrase (its first line, without the link)."""
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith("See https://")]
    if lines and lines[0].startswith("Error parsing override"):
        lines = lines[1:]
    if not lines:
        return "cannot be parsed"
    first = lines[0]
    if first.startswith("LexerNoViableAltException"):
        caret = lines[1].find("^") - (len(lines[0]) - len(arg)) if len(lines) > 1 else -1
        return (
            f"unexpected character '{arg[caret]}' at position {caret + 1}"
            if 0 <= caret < len(arg)
            else "cannot be read"
        )
    if "missing EQUAL" in first:
        return "missing '='"
    return first.replace("<EOF>", "the end")


#: command-line arguments through which a config could set ``hydra.mode`` (see :func:`skip_mode_probe`)
MODE_SOURCES = ("hydra.mode", "+hydra.mode", "++hydra.mode", "hydra.searchpath", "+hydra.searchpath")
MODE_SOURCES += ("++hydra.searchpath", "--config-path", "-cp", "--config-dir", "-cd", "--config-name", "-cn")
MODE_SOURCES += ("--experimental-rerun",)


@contextmanager
def skip_mode_probe(args: list[str]) -> Iterator[None]:
    """Skip Hydra's mode probe where its answer is known: no ``hydra.mode`` anywhere.

    Before running, Hydra 1.3 composes the whole config once more (``Hydra.get_mode``) only to read
    ``hydra.mode``, which returns None unless a config or an override sets it: about a quarter of
    a second of every run's start-up. No config shipped with mtlrun sets it (a test checks), so
    the probe is skipped unless the command line names ``hydra.mode`` or brings configs of its own
    (``--config-dir``, ``hydra.searchpath``, ...), where Hydra probes as usual.
    """
    from hydra._internal.hydra import Hydra

    probe = getattr(Hydra, "get_mode", None)
    if probe is None or any(arg.startswith(MODE_SOURCES) for arg in args):
        yield
        return
    Hydra.get_mode = lambda self, config_name, overrides: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Hydra.get_mode = probe  # type: ignore[method-assign]


@contextmanager
def cfg_with_ranges() -> Iterator[None]:
    """``--cfg job`` (and ``all``) prints each ranged option with its range as a YAML comment
    (``lr: 0.001  # > 0``), so the printout still loads as a config. Hydra writes the YAML itself
    (``Hydra.show_cfg``); its text is annotated from the declarations of the config it shows."""
    from hydra._internal.hydra import Hydra

    show = Hydra.show_cfg

    def annotated(self: Any, *args: Any, **kwargs: Any) -> None:
        import io
        from contextlib import redirect_stdout

        buffer = io.StringIO()
        with redirect_stdout(buffer):
            show(self, *args, **kwargs)
        sys.stdout.write(_annotate(buffer.getvalue()))

    Hydra.show_cfg = annotated  # type: ignore[method-assign]
    try:
        yield
    finally:
        Hydra.show_cfg = show  # type: ignore[method-assign]


def _annotate(text: str) -> str:
    """The printed config with its ranges; unchanged where it cannot be read back (a scalar, a package)."""
    import yaml

    from mtlrun.config.ranges import annotate_yaml
    from mtlrun.config.schema import config_ranges

    if text.startswith("# @package"):
        return text
    try:
        shown = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(shown, dict):
        return text
    problems = [p for key, declared in config_ranges(shown) if (p := declared.problem(key, _lookup(shown, key)))]
    if problems:  # the printout is what was asked for; the run it describes would be refused
        print(f"mtlrun: warning: {'; '.join(problems)} (a run with this config is refused)", file=sys.stderr)
    return annotate_yaml(text, dict(config_ranges(shown)))


def _lookup(tree: Any, key: str) -> Any:
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def main() -> None:
    """The ``mtlrun`` console script."""
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        from mtlrun.cli.help import render_help

        try:
            print(render_help(), flush=True)
        except BrokenPipeError:  # mtlrun --help | head: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    try:
        sys.argv[1:] = check_command_line(sys.argv[1:])
    except ConfigError as ex:
        print(f"mtlrun: error: {ex}", file=sys.stderr)
        sys.exit(2)
    user_wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; we print one line below
    from mtlrun.cli.resume import rewrite_argv

    try:
        sys.argv[1:], resumed = rewrite_argv(sys.argv[1:])  # resume=FOLDER: replay the folder's own command line
        sys.argv[1:] = prepare_components(sys.argv[1:])  # _target_ classes, installed plugins
    except ConfigError as ex:
        print(f"mtlrun: error: {ex}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = follower_overrides(sys.argv[1:])
    from mtlrun.cli.folder_guard import NothingToResume, Refused, begin_invocation
    from mtlrun.cli.resume import resuming_folder

    begin_invocation()
    try:
        with skip_mode_probe(sys.argv[1:]), cfg_with_ranges(), resuming_folder(resumed):
            _hydra_main()
    except Refused as ex:  # the run or sweep folder's guard, before anything is written
        print(f"mtlrun: error: {ex.error}", file=sys.stderr)
        sys.exit(ex.code)
    except NothingToResume as ex:  # found by the guard too: the folder is left as it was
        ex.show()
        sys.exit(0)
    except KeyboardInterrupt as ex:
        print(f"mtlrun: interrupted{f' ({ex})' if str(ex) else ''}", file=sys.stderr)
        sys.exit(getattr(ex, "exit_code", 130))
    except Exception as ex:
        if user_wants_traceback:
            raise
        from mtlrun.results.atomic import WriteFailed

        if isinstance(ex, WriteFailed):  # disk full, no permission: the system's reason says it all
            print(f"mtlrun: error: {ex}", file=sys.stderr)
            sys.exit(1)
        user_error = is_user_error(ex)
        if user_error:  # a mistake found after the run or sweep folder was made: remove what this made
            from mtlrun.cli.folder_guard import release_created

            release_created(stop_at=Path.cwd())
        print(f"mtlrun: error: {describe_error(ex)}", file=sys.stderr)
        if not user_error:
            print("(set HYDRA_FULL_ERROR=1 for the full traceback)", file=sys.stderr)
        sys.exit(2 if user_error else 1)


def follower_overrides(args: list[str]) -> list[str]:
    """A rank other than 0 of a run started by torchrun or srun composes the same config into a
    scratch folder of its own, with no log: it trains into rank 0's folder, which rank 0 alone writes
    (``mtlrun.train.distributed``)."""
    if "RANK" not in os.environ and os.environ.get("MTLRUN_SLURM_DDP") != "1":
        return args
    from mtlrun.train.distributed import is_follower

    if not is_follower():
        return args
    import atexit
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix="mtlrun-rank-")
    atexit.register(shutil.rmtree, scratch, True)
    return [
        *(a for a in args if not a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))),
        f"hydra.run.dir={scratch}",
        f"hydra.sweep.dir={scratch}",
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]

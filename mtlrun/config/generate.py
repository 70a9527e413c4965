"""Generate ``mtlrun/config/options.py``: one structured config per group choice, from its signature.

The registered constructor is the only source of an option's default and type. Hydra needs them
before the run starts (to type-check ``balancer.c=abc`` at compose time and to show every default
in ``--cfg job``), but the entry point must not import torch to get them, so the dataclasses are
generated into a torch-free module and a test keeps that module equal to what this generator
writes. Run ``python -m mtlrun.config.generate`` after changing a registered signature.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mtlrun.config.option_ranges import RANGES
from mtlrun.config.ranges import Range

#: per group: the registry, and the constructor arguments the code passes (not user options)
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dataset": ("mtlrun.data:DATASETS", ()),
    "encoder": ("mtlrun.models:ENCODERS", ("input_shape", "numeric", "cardinalities", "vocab", "bags")),
    "arch": ("mtlrun.models:ARCHS", ("encoder", "tasks")),
    "balancer": ("mtlrun.balancers:BALANCERS", ("tasks",)),
    "schedule": ("mtlrun.train.schedule:SCHEDULES", ("tasks", "epochs")),
    "logger": ("mtlrun.loggers:LOGGERS", ("output_dir", "run_name")),
}
#: group choices that are not registered components (resolved by the run itself)
EXTRA_CHOICES = {"encoder": ["auto"]}
TARGET = Path(__file__).with_name("options.py")
_PRIMITIVES = (bool, int, float, str)


def _registry(path: str) -> Any:
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def class_name(group: str, choice: str) -> str:
    return group.capitalize() + "".join(part.capitalize() for part in choice.split("_")) + "Options"


def omegaconf_type(annotation: Any) -> str:
    """The closest type OmegaConf can check, as source text (``Any`` where it cannot)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "Any"
    if annotation in _PRIMITIVES:
        return annotation.__name__
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        return kinds.pop().__name__ if len(kinds) == 1 and kinds <= set(_PRIMITIVES) else "Any"
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            inner = omegaconf_type(rest[0])
            return "Any" if inner == "Any" else f"Optional[{inner}]"
        return "Any"
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple):
        inner = args[0] if args and (origin is not tuple or (len(args) == 2 and args[1] is Ellipsis)) else Any
        return f"List[{omegaconf_type(inner) if inner in _PRIMITIVES else 'Any'}]"
    if origin in (dict, Mapping, typing.Mapping) or annotation is dict:
        # not Dict[str, Any]: OmegaConf 2.3 cannot merge an override such as {sum: 2} into a
        # typed mapping whose default is None; the registry checks the mapping when building
        return "Any"
    return "Any"


def _default_source(value: Any, type_text: str) -> str:
    if value is inspect.Parameter.empty:
        return "MISSING"
    if isinstance(value, (list, tuple)):
        return f"field(default_factory=lambda: {list(value)!r})"
    if isinstance(value, dict):
        return f"field(default_factory=lambda: {dict(value)!r})"
    if isinstance(value, float) and type_text.endswith("int]"):
        return repr(value)
    return repr(value)


def options_of(factory: Callable[..., Any], skip: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    """``(name, type, default)`` source text of every user option of ``factory``."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        hints = {}
    for name, param in inspect.signature(target).parameters.items():
        if name in ("self", *skip) or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        type_text = omegaconf_type(hints.get(name, param.annotation))
        default = param.default
        if default is None and not type_text.startswith("Optional") and type_text != "Any":
            type_text = f"Optional[{type_text}]"
        yield name, type_text, _default_source(default, type_text)


def _with_range(default: str, declared: Range | None) -> str:
    """The field's source with its declared range: ``bounded(0.0, ge=0, lt=1)``."""
    if declared is None:
        return default
    bounds = declared.source()[len("Range(") : -1]
    if default.startswith("field(default_factory="):
        return f"bounded(factory={default[len('field(default_factory=') : -1]}, {bounds})"
    return f"bounded({default}, {bounds})"


def render() -> str:
    lines = [
        '"""Structured configs of every group choice, generated from the registered signatures.',
        "",
        "Generated by ``python -m mtlrun.config.generate``; do not edit (a test compares it with the generator).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from dataclasses import dataclass, field",
        "from typing import TYPING_NAMES",
        "",
        "IMPORT_MISSING",
        "from mtlrun.config.ranges import bounded",
    ]
    index: list[tuple[str, str, str]] = []
    for group, (path, skip) in GROUPS.items():
        registry = _registry(path)
        choices = [(n, None) for n in EXTRA_CHOICES.get(group, [])] + [(n, registry.get(n)) for n in registry.names()]
        for choice, factory in choices:
            cls = class_name(group, choice)
            index.append((group, choice, cls))
            lines += ["", "@dataclass", f"class {cls}:", f"    name: str = {choice!r}"]
            if factory is not None:
                declared = RANGES.get((group, choice), {})
                for name, type_text, default in options_of(factory, skip):
                    lines.append(f"    {name}: {type_text} = {_with_range(default, declared.get(name))}")
            lines.append("")
    lines += ["", "#: (group, choice) -> its structured config", "OPTIONS: dict[tuple[str, str], type] = {"]
    lines += [f"    ({group!r}, {choice!r}): {cls}," for group, choice, cls in index]
    lines += ["}", ""]
    source = "\n".join(lines)
    uses_missing = " = MISSING" in source
    source = source.replace("IMPORT_MISSING", "from omegaconf import MISSING\n" if uses_missing else "")
    if "field(" not in source:
        source = source.replace("from dataclasses import dataclass, field", "from dataclasses import dataclass")
    used = [name for name in ("Any", "Dict", "List", "Optional") if f"{name}[" in source or f": {name} " in source]
    source = source.replace("TYPING_NAMES", ", ".join(used))
    return _format(source)


def _format(source: str) -> str:
    """ruff's formatting when ruff is installed, so the committed file passes ``ruff format``."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff") or str(Path(__import__("sys").executable).with_name("ruff"))
    try:
        out = subprocess.run(
            [ruff, "format", "--line-length", "120", "-"], input=source, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return source
    return out.stdout


def main() -> None:
    import subprocess
    import sys

    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
    # docs/options.md from the options.py just written: a fresh process, as this one may hold the old module
    subprocess.run([sys.executable, "-m", "mtlrun.config.options_doc"], check=True)


if __name__ == "__main__":
    main()

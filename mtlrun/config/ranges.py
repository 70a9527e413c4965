"""The valid values of every numeric option, declared once next to the option.

A schema option (``trainer.lr``) declares its range in its dataclass field (:func:`bounded`); a
component option (``encoder.dropout``) in :mod:`mtlrun.config.option_ranges`, which the generator
copies into the option's field of ``options.py``; a user's component in its signature
(``typing.Annotated[float, Range(gt=0)]``, docs/plugins.md). The same declaration gives the error
(``mtlrun.config.schema.check_ranges``, run by ``validate`` before the run folder exists, and
``sweep_problems`` before a sweep's), the check of ``Registry.build``, the comments of
``mtlrun --cfg job`` (:func:`annotate_yaml`) and the table in docs/options.md. This module reads no
config of its own (it sits below ``options.py`` and the schema).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mtlrun.errors import ConfigError

#: the key of a dataclass field's metadata that holds its :class:`Range`
RANGE = "mtlrun_range"


def _num(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Range:
    """The values a numeric option accepts: bounds (``ge``/``gt`` below, ``le``/``lt`` above) or a
    fixed set of ``choices``; always a finite number. ``note`` says what a special value means
    (``0 = off``). A list option's range applies to each item."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[float, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.ge is not None and self.gt is not None or self.le is not None and self.lt is not None:
            raise TypeError("a Range has at most one lower bound (ge or gt) and one upper bound (le or lt)")

    @property
    def low(self) -> float | None:
        return self.ge if self.ge is not None else self.gt

    @property
    def high(self) -> float | None:
        return self.le if self.le is not None else self.lt

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.choices:
            return value in self.choices
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def text(self) -> str:
        """``[0, 1)``, ``> 0``, ``>= 1``, ``one of 0, 1, 2``, ``any finite number``."""
        if self.choices:
            return "one of " + ", ".join(map(_num, self.choices))
        low, high = self.low, self.high
        if low is not None and high is not None:
            return (
                f"{'[' if self.ge is not None else '('}{_num(low)}, {_num(high)}{']' if self.le is not None else ')'}"
            )
        if low is not None:
            return f"{'>=' if self.ge is not None else '>'} {_num(low)}"
        if high is not None:
            return f"{'<=' if self.le is not None else '<'} {_num(high)}"
        return "any finite number"

    def described(self) -> str:
        """:meth:`text` with the ``note``: ``>= 0 (0 = off)`` (the ``--cfg job`` comment, the docs)."""
        return f"{self.text()} ({self.note})" if self.note else self.text()

    def requirement(self) -> str:
        """What a bad value is told: ``must be in [0, 1)``, ``must be >= 2 (two seeds ...)``."""
        text = self.text()
        if text == "any finite number":
            said = "must be a finite number"
        elif self.choices:
            said = f"must be {text}"
        else:
            said = f"must be {'in ' if text[0] in '[(' else ''}{text}"
        return f"{said} ({self.note})" if self.note else said

    def problem(self, key: str, value: Any) -> str | None:
        """``None`` when ``value`` (a number, a list of numbers, None, or not a number) is acceptable,
        else the one-line reason naming ``key``. Non-numbers are the type checks' business."""
        if value is None or isinstance(value, (bool, str)):
            return None
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                found = self.problem(f"{key}[{i}]", item)
                if found:
                    return found
            return None
        if not isinstance(value, (int, float)):
            return None
        if value in self:
            return None
        if not math.isfinite(value) and not self.choices and self.requirement() != "must be a finite number":
            return f"{key}={value} must be a finite number {self.requirement()[len('must be ') :]}"
        return f"{key}={value} {self.requirement()}"

    def source(self) -> str:
        """This range as Python source (the generator writes it into ``options.py``)."""
        parts = [
            f"{name}={getattr(self, name)!r}" for name in ("ge", "gt", "le", "lt") if getattr(self, name) is not None
        ]
        if self.choices:
            parts.append(f"choices={self.choices!r}")
        if self.note:
            parts.append(f"note={self.note!r}")
        return f"Range({', '.join(parts)})"


def bounded(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None, **bounds: Any) -> Any:
    """A dataclass field with its ``default`` (or ``factory``) and its :class:`Range` (``Range(**bounds)``)."""
    metadata = {RANGE: Range(**bounds)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def range_of(f: dataclasses.Field[Any]) -> Range | None:
    found = f.metadata.get(RANGE)
    return found if isinstance(found, Range) else None


def ranges_of(schema: type, prefix: str = "") -> Iterator[tuple[str, Range]]:
    """``(dotted key, range)`` of every ranged field of a dataclass, nested dataclasses included."""
    for f in dataclasses.fields(schema):
        found = range_of(f)
        if found is not None:
            yield prefix + f.name, found
        inner = f.default_factory if callable(f.default_factory) else None
        if inner is not None and dataclasses.is_dataclass(inner):
            yield from ranges_of(inner, f"{prefix}{f.name}.")


def annotated_ranges(factory: Callable[..., Any]) -> dict[str, Range]:
    """The ranges a user's class or function declares on its options (``Annotated[float, Range(...)]``)."""
    import inspect

    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:
        return {}
    found: dict[str, Range] = {}
    for name, hint in hints.items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, Range):
                found[name] = meta
    return found


def check_options_ranges(group: str, ranges: Mapping[str, Range], options: Mapping[str, Any]) -> None:
    """One line naming every option of ``options`` outside its range in ``ranges``."""
    problems = [
        problem
        for name, declared in ranges.items()
        if name in options and (problem := declared.problem(f"{group}.{name}", options[name]))
    ]
    if problems:
        raise ConfigError("; ".join(problems))


def check_plugin_ranges(group: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """A user's component: the ranges its signature declares (``Annotated[..., Range(...)]``)."""
    check_options_ranges(group, annotated_ranges(factory), options)


def annotate_yaml(text: str, ranges: Mapping[str, Range], package: str = "") -> str:
    """``text`` (OmegaConf's YAML of a config) with ``  # range`` after each ranged key's line.

    Comments keep the printout valid YAML (``mtlrun --cfg job > my.yaml`` still loads); the block
    style OmegaConf writes (two-space indents, one key per line) is what the path tracking reads.
    """
    out: list[str] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the mappings the current line is inside
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        is_key = bool(stripped) and not stripped.startswith(("- ", "#")) and ":" in stripped and stripped != "-"
        if not is_key:
            out.append(line)
            continue
        key = stripped.split(":", 1)[0].strip().strip("'\"")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([package] * bool(package) + [k for _, k in stack] + [key])
        stack.append((indent, key))
        declared = ranges.get(path)
        out.append(f"{line}  # {declared.described()}" if declared is not None else line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")

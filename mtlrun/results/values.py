"""Numbers as the run folder stores them: JSON has no NaN or infinity, so non-finite floats are
written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` and read back here."""

from __future__ import annotations

from typing import Any


def number(value: Any) -> float | None:
    """A metric value as written by the run folder (a float, or ``"nan"``/``"inf"``); None if not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None

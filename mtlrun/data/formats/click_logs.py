"""Reading the published click logs (AliExpress, Ali-CCP): checked CSVs, one-line errors naming the file.

A log is read with pandas' C parser into numpy columns (integer ids stay int64, never Python
objects); a file that lacks one of the layout's columns, or holds a non-numeric value in one, is
refused naming the file, the column and the folder searched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mtlrun.data.formats import benchmark_files as bf
from mtlrun.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")


def read_log(dataset: str, root: Path, path: Path, columns: Sequence[str], how: str) -> pd.DataFrame:
    """The ``columns`` of the CSV ``path`` (more may be present), each numeric."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as ex:
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise bf.data_error(dataset, root, f"cannot read {path.name} as CSV: {first}", how) from None
    missing = [c for c in columns if c not in header]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise bf.data_error(dataset, root, f"{path.name} lacks column(s) {shown} of the published layout", how)
    try:
        frame = pd.read_csv(path, usecols=list(columns))
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as ex:
        raise bf.data_error(dataset, root, f"{path.name}: {str(ex).strip().splitlines()[0]}", how) from None
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            value = frame[column][pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()]
            shown = repr(value.iloc[0]) if len(value) else "a non-numeric value"
            raise bf.data_error(
                dataset, root, f"{path.name}: column {column} holds {shown}; ids and labels are numbers", how
            )
    if len(frame) == 0:
        raise bf.data_error(dataset, root, f"{path.name} has no rows", how)
    return frame[list(columns)]


def carve(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rest, held_out)``: a seeded ``fraction`` of the rows held out (at least one row each)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(frame))
    n = min(max(1, int(round(len(frame) * fraction))), len(frame) - 1)
    held, rest = np.sort(order[:n]), np.sort(order[n:])
    return frame.iloc[rest].reset_index(drop=True), frame.iloc[held].reset_index(drop=True)

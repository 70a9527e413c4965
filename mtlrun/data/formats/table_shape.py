"""A table's header and rows, checked where pandas would read them wrong without a word.

Rules (``dataset=table`` and the labels table of ``dataset=image_folder``):

- **Column names are unique.** pandas renames a second ``y`` to ``y.1``, which then becomes a
  feature: the target leaks into the inputs. A name that appears twice in the header (a CSV/TSV
  header row, a Parquet schema) is refused; a column really named ``y.1`` beside ``y`` is fine,
  since the check reads the header itself, not pandas' renamed columns. Empty names are exempt:
  pandas names them ``Unnamed: N`` by position.
- **The header has as many fields as the rows.** When the first row has more fields than the
  header (a missing name, or a delimiter at the end of every row), pandas takes the extra leading
  fields as the row index and shifts every column by one: values are read under the wrong names.
  Refused, naming both counts. A later row with more fields than the header is refused by pandas
  itself (``Expected N fields in line L``).
- **No row is shorter than the header.** pandas fills the fields a short row lacks with missing
  values, so a row cut short (a damaged line, an editor that dropped trailing delimiters) would be
  read as missing labels or features. A missing value is an empty field (``1,,3``); a short row is
  refused, naming its line. Blank lines are skipped, as pandas skips them.

Only the first two records are read for the first two rules. A short row always lacks the last
field, which pandas then reads as missing, so the whole file is scanned only when the last column
has missing values, to tell empty fields (fine) from absent ones.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mtlrun.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

#: csv's per-field limit (128 KiB by default) would refuse long text fields that pandas reads
_FIELD_LIMIT = 2**31 - 1


def duplicated(names: Sequence[str]) -> list[str]:
    """The non-empty names that occur more than once, in order of first appearance."""
    counts = Counter(n for n in names if n != "")
    return [n for n in dict.fromkeys(names) if counts.get(n, 0) > 1]


def _refuse_duplicates(names: Sequence[str], path: Path, key: str, renamed_by_pandas: bool) -> None:
    twice = duplicated(names)
    if twice:
        where = "; ".join(
            f"'{name}' (columns {', '.join(str(i + 1) for i, n in enumerate(names) if n == name)})" for name in twice
        )
        why = f" (pandas would read the copy as a feature named '{twice[0]}.1')" if renamed_by_pandas else ""
        raise ConfigError(f"{key}: {path} has duplicate column names: {where}; give every column its own name{why}")


@contextmanager
def _text(path: Path) -> Iterator[io.TextIOWrapper]:
    """``path`` as text, decompressed by its suffix as pandas does (.gz, .bz2, .zip, .xz, .zst)."""
    suffix = path.suffix.lower()
    with ExitStack() as stack:
        raw: IO[bytes]
        if suffix == ".gz":
            raw = stack.enter_context(gzip.open(path, "rb"))
        elif suffix == ".bz2":
            raw = stack.enter_context(bz2.open(path, "rb"))
        elif suffix == ".xz":
            raw = stack.enter_context(lzma.open(path, "rb"))
        elif suffix == ".zip":
            archive = stack.enter_context(zipfile.ZipFile(path))
            raw = stack.enter_context(archive.open(archive.namelist()[0]))
        elif suffix == ".zst":
            import zstandard  # pandas needs it for .zst too, so it is there when pandas read the file

            raw = stack.enter_context(zstandard.open(path, "rb"))
        else:
            raw = stack.enter_context(open(path, "rb"))
        # utf-8-sig drops a byte-order mark, as pandas does; pandas has already refused undecodable text
        yield stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=""))


def _records(handle: io.TextIOWrapper, sep: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of every non-blank record (``line`` is where the record ends)."""
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    reader = csv.reader(handle, delimiter=sep)
    for fields in reader:
        if fields:
            yield reader.line_num, fields


def check_text_table(path: Path, sep: str, frame: pd.DataFrame, key: str) -> None:
    """Apply the module's rules to the CSV/TSV ``path`` that pandas read as ``frame``."""
    kind = "TSV" if sep == "\t" else "CSV"
    try:
        with _text(path) as handle:
            records = _records(handle, sep)
            header_line, header = next(records, (0, []))
            _refuse_duplicates(header, path, key, renamed_by_pandas=True)
            first = next(records, None)
            if first is None:
                return
            if len(first[1]) > len(header):
                raise ConfigError(
                    f"{key}: the header of {path} has {len(header)} fields but its first row (line {first[0]}) has "
                    f"{len(first[1])}; pandas would read the extra fields as a row index and shift every column: "
                    "name every column in the header (or remove the delimiter at the end of each row)"
                )
            rows = [first] if len(first[1]) < len(header) else []
            if not rows and len(frame.columns) and bool(frame.iloc[:, -1].isna().any()):
                rows = records  # the last column has missing values: empty fields, or short rows?
            for line, fields in rows:
                if len(fields) < len(header):
                    raise ConfigError(
                        f"{key}: line {line} of {path} has {len(fields)} fields, its header (line {header_line}) "
                        f"{len(header)}; write a missing value as an empty field (e.g. 1,,3), a row cut short "
                        "is not read as missing values"
                    )
    except (csv.Error, OSError, zipfile.BadZipFile, EOFError, lzma.LZMAError) as ex:
        first_line = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise ConfigError(f"{key}: cannot read {path} as {kind}: {first_line}") from None


def check_parquet_columns(path: Path, key: str) -> None:
    """Refuse a Parquet file whose schema names a column twice (read from the footer, not the data)."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as ex:  # pyarrow's errors for a file that is not Parquet
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise ConfigError(f"{key}: cannot read {path} as Parquet: {first}") from None
    _refuse_duplicates(names, path, key, renamed_by_pandas=False)

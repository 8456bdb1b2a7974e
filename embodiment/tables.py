"""Reading user tables (CSV, TSV, XLSX, Parquet) with one clear message on failure,
and writing Parquet atomically so that no reader ever sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from embodiment.errors import InputError

_READERS = {
    ".csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8"),
    ".tsv": lambda p: pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8"),
    ".txt": lambda p: pd.read_csv(p, sep=None, engine="python", dtype=str, keep_default_na=False, encoding="utf-8"),
    ".xlsx": lambda p: pd.read_excel(p, dtype=str, keep_default_na=False),
    ".xls": lambda p: pd.read_excel(p, dtype=str, keep_default_na=False),
    ".parquet": lambda p: pd.read_parquet(p),
    ".pq": lambda p: pd.read_parquet(p),
}


#: compressed text tables: pandas decompresses by the file's ending
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
_TEXT = (".csv", ".tsv", ".txt")


def _table_type(path: Path) -> str:
    """The table type of a file name: its ending, or the one before a compression ending."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in COMPRESSIONS and suffixes[-2] in _TEXT:
        return suffixes[-2]
    return path.suffix.lower()


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a user table; text formats come back as strings so that no word becomes NaN.

    Args:
        path: a .csv, .tsv, .txt, .xlsx/.xls or .parquet file; the text ones may be
            compressed (``ratings.csv.gz``, ``.bz2``, ``.xz``, ``.zst``).

    Returns:
        The table; CSV/XLSX cells as ``str`` (convert numbers with :func:`numeric_column`).

    Raises:
        InputError: the file is missing, empty, not UTF-8, not a table, or of an unknown type.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", source=path)
    if path.is_dir():
        raise InputError("is a folder, expected a table file (.csv, .tsv, .xlsx, .parquet)", source=path)
    if path.stat().st_size == 0:
        raise InputError("file is empty, expected a table with a header row", source=path)
    kind = _table_type(path)
    reader = _READERS.get(kind)
    if reader is None:
        raise InputError(
            f"unknown table type {path.suffix!r}; expected one of {', '.join(sorted(_READERS))} "
            f"(text tables may end in {', '.join(COMPRESSIONS)})",
            source=path,
        )
    try:
        frame = reader(path)
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", source=path) from None
    except pd.errors.EmptyDataError:
        raise InputError("file has no rows or header", source=path) from None
    except (pd.errors.ParserError, ValueError, OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot be read as a {kind} table: {str(exc).splitlines()[0]}", source=path) from None
    except Exception as exc:  # zip/xml errors from a corrupt xlsx, a broken archive and the like
        raise InputError(f"cannot be read as a {kind} table: {type(exc).__name__}: {exc}", source=path) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    # pandas renames repeated CSV headers to "X.1"; spaces or a spreadsheet can still repeat one
    seen: dict[str, int] = {}
    for position, name in enumerate(frame.columns, start=1):
        if name in seen:
            raise InputError(
                f"column {name!r} appears twice (columns {seen[name]} and {position}); rename or delete one",
                source=path,
            )
        seen[name] = position
    if frame.empty:
        raise InputError("table has a header but no rows", source=path)
    return frame


def numeric_column(frame: pd.DataFrame, column: str, *, source: object, allow_empty: bool = False):
    """Convert one text column to float64; empty or non-numeric cells raise with their rows.

    Args:
        frame: the table.
        column: the column to convert.
        source: the file, for the message.
        allow_empty: whether empty cells become NaN instead of an error.

    Returns:
        A float64 numpy array.
    """
    raw = frame[column]
    if raw.dtype.kind in "fiu":
        values = raw.to_numpy(dtype="float64")
        bad_empty = pd.Series(False, index=raw.index) if allow_empty else raw.isna()
    else:
        text = raw.astype(str).str.strip()
        empty = text.isin(["", "nan", "NaN", "NA", "N/A", "None"])
        values = pd.to_numeric(text.where(~empty, None), errors="coerce").to_numpy(dtype="float64")
        garbage = ~empty & pd.isna(values)
        if garbage.any():
            rows = _rows(garbage)
            examples = ", ".join(repr(v) for v in text[garbage].head(3))
            raise InputError(
                f"non-numeric values in rows {rows} (e.g. {examples}); expected numbers",
                source=source,
                key=f"column {column!r}",
            )
        bad_empty = empty if not allow_empty else pd.Series(False, index=raw.index)
    if bad_empty.any():
        raise InputError(
            f"empty cells in rows {_rows(bad_empty)}; expected a number in every row",
            source=source,
            key=f"column {column!r}",
        )
    return values


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """Spreadsheet row numbers (header = row 1) of the first ``limit`` True cells."""
    idx = [int(i) + 2 for i in mask.to_numpy().nonzero()[0]]
    shown = ", ".join(map(str, idx[:limit]))
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def write_parquet_atomic(table: pa.Table | pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``table`` to ``path`` through :func:`atomic_path` (fsynced before the rename).

    A crash mid-write leaves at most a hidden ``.tmp`` file that readers ignore; the
    previous version of ``path`` (if any) stays intact until the rename.

    Raises:
        InputError: the folder cannot be written (unwritable, not a folder, disk full),
            naming it; earlier files are untouched.
    """
    path = Path(path)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
    except OSError as exc:  # say where, keep what exists
        raise InputError(f"cannot write here: {exc.strerror or exc}; earlier tables are intact", source=path) from None
    return path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block
    ends without an error, removed when it raises, so ``path`` is whole or absent."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write UTF-8 ``text`` to ``path`` through :func:`atomic_path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path

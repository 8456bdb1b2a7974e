"""The results store and its Ray actor: Parquet tables written exactly once per key.

Each table is a folder of Parquet files, one file per *key* (a trial's evaluation, a
baseline batch ...), named by a hash of the key. Writing a key again replaces its file, so
retries never duplicate rows; every file is written to a hidden temporary name and moved
into place, so a crash mid-write never leaves a partial file that readers would take as
data (pyarrow, pandas and DuckDB all skip names starting with '.'). The actor's state is
nothing but the files: a restarted actor rebuilds its index by listing them.

Tables and their columns: :mod:`grid.schema` (every write is cast to its table's schema).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from grid.location import RunLocation
from grid.schema import TABLES, conform  # the tables and their columns: one definition


#: tables written one Parquet row group per ``layer`` (the aggregate reads them a layer at a time)
LAYERED_TABLES = ("embeddings",)


def _filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for a local path or any URI it knows."""
    location = RunLocation.of(root)
    if location.remote:
        return pafs.FileSystem.from_uri(location.path)
    return pafs.LocalFileSystem(), location.path


@contextmanager
def atomic_output(fs: pafs.FileSystem, path: str) -> Iterator[pa.NativeFile]:
    """A stream to write ``path`` on any pyarrow filesystem: it goes to a hidden temporary
    file beside it, moved onto ``path`` when the block ends without an error and deleted
    when it raises, so ``path`` is whole or absent (the remote twin of
    :func:`embodiment.tables.atomic_path`)."""
    folder = path.rsplit("/", 1)[0]
    tmp = f"{folder}/.{uuid.uuid4().hex}.tmp"
    try:
        with fs.open_output_stream(tmp) as sink:
            yield sink
        fs.move(tmp, path)
    except BaseException:
        try:
            fs.delete_file(tmp)
        except OSError:
            pass
        raise


def key_name(key: str) -> str:
    """File name of a key: readable prefix + hash, safe on every filesystem."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)[:60]
    return f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.parquet"


def _vectors(values) -> pa.Array:
    """Embedding vectors as one Arrow list<float32> array built from a float32 buffer
    (vectors of one length: one stacked array and its offsets; no Python float per value)."""
    arrays = [None if v is None else np.asarray(v, dtype=np.float32).ravel() for v in values]
    lengths = {len(a) for a in arrays if a is not None}
    if len(lengths) == 1 and all(a is not None for a in arrays):
        width = lengths.pop()
        flat = np.concatenate(arrays) if arrays else np.empty(0, np.float32)
        offsets = np.arange(0, len(arrays) * width + 1, width, dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.float32()))
    return pa.array(arrays, type=pa.list_(pa.float32()))


def _plain_arrow(frame: pd.DataFrame | pa.Table) -> pa.Table:
    """Arrow table without pandas metadata (so pandas, polars and DuckDB read it alike);
    embedding vectors go in as float32 lists (:func:`grid.schema.conform` gives their type)."""
    if isinstance(frame, pd.DataFrame):
        frame = frame.reset_index(drop=True)
        if "vector" in frame and len(frame):
            vectors = _vectors(frame["vector"])
            table = pa.Table.from_pandas(frame.drop(columns="vector"), preserve_index=False)
            table = table.append_column("vector", vectors)
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
    else:
        table = frame
    return table.replace_schema_metadata(None)


class ResultsStore:
    """Idempotent, atomic Parquet tables under ``root/tables``."""

    def __init__(self, root: str):
        self.root = root.rstrip("/")
        self.fs, self.base = _filesystem(self.root)
        self.fs.create_dir(f"{self.base}/tables", recursive=True)

    def table_dir(self, table: str) -> str:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        return f"{self.base}/tables/{table}"

    def write(self, table: str, key: str, frame: pd.DataFrame | pa.Table) -> str:
        """Write the rows of ``key`` into ``table``, replacing any earlier rows of that key."""
        folder = self.table_dir(table)
        self.fs.create_dir(folder, recursive=True)
        data = conform(table, _plain_arrow(frame))
        data = data.replace_schema_metadata({b"egrid_key": key.encode()})
        final = f"{folder}/{key_name(key)}"
        with atomic_output(self.fs, final) as sink:
            if table in LAYERED_TABLES and data.num_rows:
                # one row group per layer: a reader asking for one layer skips the others' bytes
                with pq.ParquetWriter(sink, data.schema) as writer:
                    layers = data.column("layer")
                    for layer in sorted(set(layers.to_pylist()), key=lambda v: (v is None, v)):
                        mask = pa.compute.is_null(layers) if layer is None else pa.compute.equal(layers, layer)
                        writer.write_table(data.filter(mask))
            else:
                pq.write_table(data, sink)
        return final

    def delete(self, table: str, key: str) -> bool:
        """Remove the rows of ``key`` (e.g. a stale failure record once the trial succeeded)."""
        path = f"{self.table_dir(table)}/{key_name(key)}"
        try:
            self.fs.delete_file(path)
            return True
        except (FileNotFoundError, OSError):
            return False

    def keys(self, table: str) -> set[str]:
        """Keys already written to ``table`` (read from the files' metadata)."""
        folder = self.table_dir(table)
        out = set()
        for info in self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
            name = info.base_name
            if name.startswith(".") or not name.endswith(".parquet"):
                continue
            meta = pq.read_schema(self.fs.open_input_file(info.path)).metadata or {}
            out.add(meta.get(b"egrid_key", name.encode()).decode())
        return out

    def read(self, table: str, *, columns: list[str] | None = None, filters: list | None = None) -> pd.DataFrame:
        """The table (empty frame when nothing was written); ``columns`` and ``filters``
        (pyarrow's, e.g. ``[("layer", "==", 8)]``) read only part of it from each file."""
        folder = self.table_dir(table)
        files = [
            i.path
            for i in self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
            if i.base_name.endswith(".parquet") and not i.base_name.startswith(".")
        ]
        parts = [
            pq.read_table(self.fs.open_input_file(f), columns=columns, filters=filters).to_pandas()
            for f in sorted(files)
        ]
        parts = [p for p in parts if len(p)] or parts[:1]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def write_json(self, name: str, payload: dict) -> None:
        """A small JSON record (run manifest) written atomically beside the tables."""
        with atomic_output(self.fs, f"{self.base}/{name}") as sink:
            sink.write(json.dumps(payload, indent=1, default=str).encode())

    def read_json(self, name: str) -> dict | None:
        try:
            with self.fs.open_input_stream(f"{self.base}/{name}") as src:
                return json.loads(src.read().decode())
        except (FileNotFoundError, OSError):
            return None


class ResultsActor:
    """Serialises writes of every trial and pipeline into one :class:`ResultsStore`.

    Run it as a named, restartable Ray actor (``max_restarts=-1``); its only state is the
    files, rebuilt by :meth:`__init__` on every (re)start.
    """

    def __init__(self, root: str):
        self.store = ResultsStore(root)
        self.started = time.time()
        self.written = {t: self.store.keys(t) for t in TABLES}

    def write(self, table: str, key: str, frame: pd.DataFrame) -> int:
        """Write ``frame`` as the rows of ``key``; returns the row count."""
        self.store.write(table, key, frame)
        self.written[table].add(key)
        return len(frame)

    def delete(self, table: str, key: str) -> bool:
        """Remove the rows of ``key``; True if there were any."""
        self.written[table].discard(key)
        return self.store.delete(table, key)

    def clear(self, table: str, owner: str) -> int:
        """Remove ``owner``'s rows of ``table``: its key and every part of it (``<owner>:part<i>``,
        :class:`PartWriter`), so an evaluation run again never keeps an earlier attempt's blocks;
        returns how many keys went."""
        gone = [k for k in self.written[table] if k == owner or k.startswith(f"{owner}{PART}")]
        for key in gone:
            self.delete(table, key)
        return len(gone)

    def has(self, table: str, key: str) -> bool:
        return key in self.written[table]

    def keys(self, table: str) -> list[str]:
        return sorted(self.written[table])

    def read(self, table: str) -> pd.DataFrame:
        return self.store.read(table)

    def ping(self) -> float:
        return self.started


#: separates an owner's key from a part's number
PART = ":part"


class PartWriter:
    """One owner's rows (a trial's, a base model's) written to the results actor block by
    block, each block under its own key ``<owner>:part<i>`` with the owner's columns added.

    Call :meth:`clear` before the first block: a second attempt at the same evaluation then
    replaces the first one's blocks, whatever their number (retries never duplicate rows).

    Args:
        actor: the :class:`ResultsActor` handle.
        owner: the key the owner's rows would have as one piece (``trial:<id>``).
        columns: added to every block (``trial_id``, ``model`` ...).
    """

    def __init__(self, actor, owner: str, columns: dict):
        self.actor, self.owner, self.columns = actor, owner, columns
        self.parts: dict[str, int] = {}

    def clear(self, tables) -> None:
        import ray

        ray.get([self.actor.clear.remote(table, self.owner) for table in tables])

    def __call__(self, table: str, frame: pd.DataFrame) -> None:
        import ray

        part = self.parts.get(table, 0)
        self.parts[table] = part + 1
        ray.get(self.actor.write.remote(table, f"{self.owner}{PART}{part:05d}", frame.assign(**self.columns)))

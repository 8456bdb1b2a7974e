"""The results store: writes are idempotent per key and atomic; a crash in the middle of a
Parquet write never leaves a file that readers take as data; state rebuilds from disk."""

from __future__ import annotations

import os

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from grid.results import ResultsActor, ResultsStore


def _rows(trial: str, n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"trial_id": trial, "concept": [f"w{i}" for i in range(n)], "value": np.arange(n, dtype=float),
                         "vector": [np.arange(3, dtype=np.float32) + i for i in range(n)]})


def test_rewriting_a_key_replaces_its_rows(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.write("ratings", "trial:a", _rows("a"))
    store.write("ratings", "trial:b", _rows("b"))
    store.write("ratings", "trial:a", _rows("a", 2))  # a retried trial writes again
    table = store.read("ratings")
    assert sorted(table.groupby("trial_id").size().items()) == [("a", 2), ("b", 4)]
    assert store.keys("ratings") == {"trial:a", "trial:b"}


def test_tables_read_back_in_pandas_pyarrow_and_duckdb(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.write("embeddings", "trial:a", _rows("a"))
    folder = tmp_path / "tables" / "embeddings"
    assert pd.read_parquet(folder)["vector"].map(list).tolist()[1] == [1.0, 2.0, 3.0]
    schema = pq.read_schema(next(folder.glob("*.parquet")))
    assert str(schema.field("vector").type) == "list<element: float>" and b"pandas" not in (schema.metadata or {})
    assert duckdb.sql(f"select sum(value) from read_parquet('{folder}/*.parquet')").fetchall()[0][0] == 6.0


def test_a_crash_mid_write_leaves_no_readable_partial_file(tmp_path, monkeypatch):
    store = ResultsStore(str(tmp_path))
    store.write("metrics", "trial:a", _rows("a"))
    real = pq.write_table

    def dies_halfway(table, sink, **kwargs):
        sink.write(b"PAR1 half a file")  # bytes on disk, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        store.write("metrics", "trial:b", _rows("b"))
    monkeypatch.setattr(pq, "write_table", real)
    names = os.listdir(tmp_path / "tables" / "metrics")
    assert len(names) == 1 and store.keys("metrics") == {"trial:a"}
    assert set(store.read("metrics")["trial_id"]) == {"a"}
    # even a temp file left by a killed process is ignored by the store and by glob readers
    (tmp_path / "tables" / "metrics" / ".deadbeef.tmp").write_bytes(b"PAR1 garbage")
    assert len(store.read("metrics")) == 4
    assert duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/tables/metrics/*.parquet')").fetchall()[0][0] == 4


def test_actor_state_is_rebuilt_from_disk(tmp_path):
    first = ResultsActor(str(tmp_path))
    first.write("trials", "trial:a", _rows("a", 1))
    first.write("ratings", "trial:a", _rows("a"))
    again = ResultsActor(str(tmp_path))  # what a restarted actor does in __init__
    assert again.has("trials", "trial:a") and again.has("ratings", "trial:a") and not again.has("ratings", "trial:b")
    assert again.delete("trials", "trial:a") and not again.has("trials", "trial:a")
    assert ResultsActor(str(tmp_path)).keys("trials") == []


def test_unknown_table_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown table 'ratngs'"):
        ResultsStore(str(tmp_path)).write("ratngs", "k", _rows("a"))

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


_VALUE = {"ratings": "expected", "metrics": "value", "trials": "eval_score", "embeddings": "layer"}


def _rows(trial: str, n: int = 4, table: str = "ratings") -> pd.DataFrame:
    """Rows of ``table`` (its own columns, as the grid writes them)."""
    frame = pd.DataFrame({"trial_id": trial, _VALUE[table]: np.arange(n, dtype=float)})
    if table in ("ratings", "embeddings"):
        frame["concept"] = [f"w{i}" for i in range(n)]
    if table == "embeddings":
        frame["layer"] = np.arange(n)
        frame["vector"] = [np.arange(3, dtype=np.float32) + i for i in range(n)]
    return frame


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
    store.write("embeddings", "trial:a", _rows("a", table="embeddings"))
    folder = tmp_path / "tables" / "embeddings"
    assert pd.read_parquet(folder)["vector"].map(list).tolist()[1] == [1.0, 2.0, 3.0]
    schema = pq.read_schema(next(folder.glob("*.parquet")))
    assert str(schema.field("vector").type) == "list<element: float>" and b"pandas" not in (schema.metadata or {})
    assert duckdb.sql(f"select sum(layer) from read_parquet('{folder}/*.parquet')").fetchall()[0][0] == 6


def test_a_crash_mid_write_leaves_no_readable_partial_file(tmp_path, monkeypatch):
    store = ResultsStore(str(tmp_path))
    store.write("metrics", "trial:a", _rows("a", table="metrics"))
    real = pq.write_table

    def dies_halfway(table, sink, **kwargs):
        sink.write(b"PAR1 half a file")  # bytes on disk, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        store.write("metrics", "trial:b", _rows("b", table="metrics"))
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
    first.write("trials", "trial:a", _rows("a", 1, table="trials"))
    first.write("ratings", "trial:a", _rows("a"))
    again = ResultsActor(str(tmp_path))  # what a restarted actor does in __init__
    assert again.has("trials", "trial:a") and again.has("ratings", "trial:a") and not again.has("ratings", "trial:b")
    assert again.delete("trials", "trial:a") and not again.has("trials", "trial:a")
    assert ResultsActor(str(tmp_path)).keys("trials") == []


def test_unknown_table_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown table 'ratngs'"):
        ResultsStore(str(tmp_path)).write("ratngs", "k", _rows("a"))


def test_every_write_follows_its_tables_schema(tmp_path):
    """Columns in the schema's order and types whatever the writer's order and dtypes; a
    column a writer lacks is null; a column the schema lacks is refused, naming it."""
    from grid.schema import TABLE_SCHEMAS

    store = ResultsStore(str(tmp_path))
    rows = pd.DataFrame({"expected": [1, 2], "concept": ["a", "b"], "trial_id": "base", "p0": [0.5, 0.25]})
    store.write("ratings", "base", rows)
    read = pq.read_table(tmp_path / "tables" / "ratings").schema
    assert read.remove_metadata().equals(TABLE_SCHEMAS["ratings"])
    back = store.read("ratings")
    assert back["expected"].tolist() == [1.0, 2.0] and back["human"].isna().all()
    with pytest.raises(ValueError, match=r"table 'ratings': column\(s\) \['score'\] are not in its schema"):
        store.write("ratings", "x", rows.assign(score=1.0))
    with pytest.raises((ValueError, TypeError)):
        store.write("metrics", "y", pd.DataFrame({"n": ["many"]}))  # text in an integer column


def test_readme_lists_every_table_with_its_schemas_columns():
    """The README's table list and grid/schema.py name the same tables and columns."""
    import re
    from pathlib import Path

    from grid.schema import TABLE_SCHEMAS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    listed = {}
    for name, cols in re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", readme, flags=re.M):
        if name in TABLE_SCHEMAS:
            listed[name] = re.findall(r"`(\w+)`", cols)
    assert set(listed) == set(TABLE_SCHEMAS)
    for name, schema in TABLE_SCHEMAS.items():
        assert listed[name] == schema.names, name


def test_run_location_tells_local_folders_from_uris(tmp_path, monkeypatch):
    from grid.location import RunLocation

    monkeypatch.chdir(tmp_path)
    local = RunLocation.of("runs/demo-1")
    assert not local.remote and local.path == str(tmp_path / "runs" / "demo-1")
    assert local.child("tune") == str(tmp_path / "runs" / "demo-1" / "tune") and not local.exists("tune")
    (tmp_path / "runs" / "demo-1" / "tune").mkdir(parents=True)
    assert local.exists("tune")
    remote = RunLocation.of("s3://bucket/runs/demo-1/")
    assert (
        remote.remote
        and remote.path == "s3://bucket/runs/demo-1/"
        and remote.child("tune") == "s3://bucket/runs/demo-1/tune"
    )


@pytest.mark.parametrize("writer", ["local", "pyarrow"])
def test_the_two_atomic_writers_leave_the_old_file_whole_when_a_write_fails(tmp_path, writer):
    """embodiment.tables.atomic_path (local files) and grid.results.atomic_output (any
    pyarrow filesystem): the new bytes replace the file only when the write ends without
    an error, and no temporary file stays behind either way."""
    import pyarrow.fs as pafs

    from embodiment.tables import atomic_path
    from grid.results import atomic_output

    target = tmp_path / "manifest.json"
    target.write_text("old")

    def write(text: str, fail: bool) -> None:
        if writer == "local":
            with atomic_path(target) as tmp:
                tmp.write_text(text)
                if fail:
                    raise OSError("disk full")
        else:
            with atomic_output(pafs.LocalFileSystem(), str(target)) as sink:
                sink.write(text.encode())
                if fail:
                    raise OSError("disk full")

    with pytest.raises(OSError):
        write("new, half", fail=True)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["manifest.json"]
    write("new", fail=False)
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["manifest.json"]


def test_embedding_vectors_are_written_as_float32_lists_from_arrays(tmp_path):
    import numpy as np
    import pyarrow.parquet as pq

    from grid.results import ResultsStore

    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=7).astype(np.float32) for _ in range(5)]
    frame = pd.DataFrame(
        {
            "trial_id": "base",
            "condition": "base",
            "model": "m",
            "language": "en",
            "concept": [f"c{i}" for i in range(5)],
            "split": "test",
            "layer": 3,
            "pooling": "mean",
            "vector": vectors,
        }
    )
    store = ResultsStore(str(tmp_path / "run"))
    store.write("embeddings", "k", frame)
    files = list((tmp_path / "run" / "tables" / "embeddings").glob("*.parquet"))
    assert str(pq.read_schema(files[0]).field("vector").type) == "list<element: float>"
    back = store.read("embeddings").set_index("concept").loc[[f"c{i}" for i in range(5)]]
    for got, want in zip(back["vector"], vectors):
        assert np.array_equal(np.asarray(got, dtype=np.float32), want)


def test_embedding_layers_read_one_owners_layers_from_the_store(tmp_path):
    """The baseline's hidden states, read back from the store a layer at a time: only the
    rows ``where`` names (a trial's rows in the same table stay out), only the layers asked."""
    from grid.hidden_states import EmbeddingLayers

    store = ResultsStore(str(tmp_path))
    rows = pd.DataFrame(
        [
            {
                "trial_id": trial,
                "model": "m",
                "language": "en",
                "concept": f"c{i}",
                "layer": layer,
                "pooling": "mean",
                "split": "test",
                "vector": np.full(4, layer, np.float32),
            }
            for trial in ("base", "t1")
            for layer in (0, 3, 5)
            for i in range(3)
        ]
    )
    store.write("embeddings", "base:m:part00000", rows[rows["trial_id"] == "base"])
    store.write("embeddings", "trial:t1", rows[(rows["trial_id"] == "t1") & (rows["layer"] != 5)].assign(layer=7))
    base = EmbeddingLayers(store=store, where={"trial_id": "base", "model": "m"})
    assert base.layers() == [0, 3, 5]
    third = base.layer(3)
    assert (
        len(third) == 3 and set(third["trial_id"]) == {"base"} and np.stack(third["vector"]).tolist() == [[3.0] * 4] * 3
    )
    only = base.only([3, 7])
    assert only.layers() == [3] and len(only) == 1 and len(only.layer(3)) == 3

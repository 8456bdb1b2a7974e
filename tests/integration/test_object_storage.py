"""A grid whose run and model live in object storage, on a 3-node local Ray cluster.

An S3-compatible server (moto's server mode) listens on 127.0.0.1; each Ray node has its
own cache and scratch folder. The model is a folder in the store; the run folder is a URI.
The job is interrupted (Ctrl-C) after its first checkpoint and resumed with `egrid resume`;
the report, aggregate and status are then made from the store. Between stages every
node's cache and scratch folder is removed, so a stage that read a local file another
node (or an earlier stage) wrote would fail.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest

from object_store import BUCKET, SECRET
from doc_commands import doc_commands
from egrid_process import finish, start_egrid

from grid.node_cache import RECORD, local_copy, publish_folder
from grid.results import ResultsStore


def _store(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri)


def test_local_copy_fetches_once_checks_and_refetches_a_changed_folder(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("EGRID_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "weights.bin").write_bytes(b"x" * 1000)
    uri = f"s3://{BUCKET}/unit/model"
    publish_folder(folder, uri)

    local = Path(local_copy(uri + "/"))
    assert local.is_dir() and (local / "sub" / "weights.bin").read_bytes() == b"x" * 1000
    assert json.loads((local / RECORD).read_text())["files"] == {"config.json": 8, "sub/weights.bin": 1000}
    inode = (local / "config.json").stat().st_ino
    assert Path(local_copy(uri)) == local and (local / "config.json").stat().st_ino == inode  # not fetched again

    (local / "sub" / "weights.bin").write_bytes(b"x" * 10)  # a copy cut short is never used
    assert (Path(local_copy(uri)) / "sub" / "weights.bin").stat().st_size == 1000
    (folder / "config.json").write_text('{"a": 22}')  # the store's folder changed: fetched again
    publish_folder(folder, uri)
    assert json.loads((Path(local_copy(uri)) / "config.json").read_text()) == {"a": 22}
    file_copy = Path(local_copy(uri + "/sub/weights.bin"))  # a single file
    assert file_copy.name == "weights.bin" and file_copy.stat().st_size == 1000

    from embodiment.errors import InputError

    with pytest.raises(InputError, match="nothing found"):
        local_copy(f"s3://{BUCKET}/unit/absent")
    assert local_copy(str(folder)) == str(folder)  # local paths as they are


@pytest.fixture
def three_nodes(s3_server, tmp_path):
    """A head and two worker nodes, each with its own EGRID_CACHE and TMPDIR."""
    import ray
    from ray.cluster_utils import Cluster

    scratch = {}

    def node_env(name):
        scratch[name] = tmp_path / "nodes" / name
        for sub in ("cache", "tmp"):
            (scratch[name] / sub).mkdir(parents=True)
        return {"EGRID_CACHE": str(scratch[name] / "cache"), "TMPDIR": str(scratch[name] / "tmp")}

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "env_vars": node_env("head")})
    for i in range(2):
        cluster.add_node(num_cpus=2, env_vars=node_env(f"worker{i}"))
    cluster.wait_for_nodes()
    yield cluster, scratch
    ray.shutdown()
    cluster.shutdown()


def _wipe(scratch: dict[str, Path]) -> None:
    """Remove every node's cache and scratch files (the folders stay, empty)."""
    for folder in scratch.values():
        for sub in ("cache", "tmp"):
            shutil.rmtree(folder / sub)
            (folder / sub).mkdir()


def _output(result: tuple[int, str, str]) -> tuple[int, str]:
    """(exit code, stdout and stderr together): what a user saw."""
    code, out, err = result
    return code, out + err


def _checkpoints(run: str) -> list[str]:
    fs, base = _store(run)
    try:
        found = fs.get_file_info(pafs.FileSelector(f"{base}/train", recursive=True))
    except OSError:
        return []
    return [f.path for f in found if f.base_name == "train_state.json"]


def test_a_run_in_object_storage_is_interrupted_resumed_and_reported_from_the_store(
    three_nodes, tmp_path, make_job, tiny_model_dir
):
    """docs/cluster.md's commands, in its order, on its placeholders put in."""
    cluster, scratch = three_nodes
    model = f"s3://{BUCKET}/models/tiny"
    publish_folder(tiny_model_dir, model)
    storage = f"s3://{BUCKET}/runs"
    driver_dir = tmp_path / "driver"
    driver_dir.mkdir()
    job = make_job(
        tmp_path / "job.yaml",
        model,
        storage,
        conditions=[
            {"name": "rating_en", "format": "rating", "languages": ["en"]},
            {"name": "regression_en", "format": "regression", "languages": ["en"]},
        ],
        norms={"en": {"source": "embedded", "max_train": 32, "max_test": 20, "validation": 10}},
        training={"steps": 6, "checkpoint_every": 3},
        search={"learning_rate": 3.0e-3},
        evaluation={"layers": [2], "n_boot": 20},
        resources={"workers": 1, "cpus_per_worker": 1, "max_concurrent_trials": 2},
    )
    from grid.job_file import load_job

    run = load_job(job).run_dir()
    assert run.startswith(f"{storage}/")
    doc = doc_commands(
        {
            "s3://my-bucket/egrid_runs/paper-<hash>": run,
            "s3://my-bucket/egrid_runs": storage,
            "jobs/paper.yaml": job,
            "auto": cluster.address,
        }
    )
    assert set(doc) == {"validate", "run", "status", "resume", "aggregate", "report", "submit"}

    code, out = _output(finish(start_egrid(*doc["validate"], cwd=driver_dir)))
    assert code == 0, out[-3000:]
    # Stage 1: run, interrupted after the first checkpoint reached the store.
    driver = start_egrid(*doc["run"], cwd=driver_dir)
    deadline = time.time() + 400
    while not _checkpoints(run):
        assert driver.poll() is None, _output(finish(driver))[1][-4000:]
        assert time.time() < deadline, "no checkpoint reached the store"
        time.sleep(0.5)
    # every node that ran something fetched the model once into its own cache, checked
    copies = [
        p for name in scratch for p in (scratch[name] / "cache" / "store").glob("tiny-*") if (p / RECORD).exists()
    ]
    assert copies and all(json.loads((p / RECORD).read_text())["uri"] == model for p in copies)
    driver.send_signal(signal.SIGINT)
    code, out = _output(finish(driver))
    assert code == 130, out[-4000:]
    assert f"egrid resume {run}" in out
    assert "plan: 2 trial(s)" in out  # planned from the model's config in the store, before the run
    assert ResultsStore(run).read_json("manifest.json")["status"] == "interrupted"
    code, out = _output(finish(start_egrid(*doc["status"], cwd=driver_dir)))
    assert code == 0 and "interrupted" in out, out[-3000:]

    # Stage 2: resume from the store alone (its report is built once, in stage 3, on a fresh folder).
    _wipe(scratch)
    code, printed = _output(finish(start_egrid(*doc["resume"], "--no-report", cwd=driver_dir)))
    assert code == 0, printed[-4000:]
    store = ResultsStore(run)
    assert store.read_json("manifest.json")["status"] == "finished"
    trials, ratings = store.read("trials"), store.read("ratings")
    assert len(trials) == 2 and set(trials["status"]) == {"TERMINATED"}
    assert set(trials["condition"]) == {"rating_en", "regression_en"}
    assert all(a.startswith(f"{run}/adapters/") for a in trials["adapter"])  # adapters live in the store
    assert not ratings.duplicated(["trial_id", "concept", "dimension"]).any()
    per_model = ratings.groupby("trial_id")["concept"].nunique()
    assert set(per_model.index) == {"base", *trials["trial_id"]} and per_model.nunique() == 1
    assert len(store.read("head_ratings"))  # the regression trial's head, read by scorers from the store
    metrics = store.read("metrics")
    assert set(metrics["trial_id"]) >= {"base", *trials["trial_id"]}
    assert np.isfinite(metrics.loc[metrics["metric"] == "rsa", "value"]).all()

    # Stage 3: aggregate and report, each from the store, on a fresh driver folder.
    _wipe(scratch)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    keys = ["trial_id", "metric", "subset", "dimension", "layer"]
    before = metrics.sort_values(keys).reset_index(drop=True)
    code, out = _output(finish(start_egrid(*doc["aggregate"], cwd=fresh)))
    assert code == 0, out[-4000:]
    printed += out
    after = ResultsStore(run).read("metrics").sort_values(keys).reset_index(drop=True)
    pd.testing.assert_series_equal(before["value"], after["value"], check_names=False)
    fs, base = _store(run)
    fs.delete_dir_contents(f"{base}/report", missing_dir_ok=True)
    code, out = _output(finish(start_egrid(*doc["report"], cwd=fresh)))
    assert code == 0, out[-4000:]
    printed += out
    index = fs.get_file_info(f"{base}/report/index.html")
    assert index.type == pafs.FileType.File and index.size > 1000  # the report, copied into the store
    assert (fresh / "egrid_reports" / run.rsplit("/", 1)[-1] / "index.html").exists()
    # credentials never reach the run's files or what egrid printed
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if info.type == pafs.FileType.File and info.base_name.endswith((".json", ".yaml", ".html", ".txt", ".log")):
            with fs.open_input_stream(info.path) as src:
                assert SECRET.encode() not in src.read(), info.path
    assert SECRET not in printed
    # nothing was written to a local folder named after the URI (the old `Path("s3://...")` bug)
    for folder in (driver_dir, fresh):
        assert not [p for p in folder.rglob("*") if p.name.startswith("s3:")]

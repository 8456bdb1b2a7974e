"""Fixtures for integration tests: a saved tiny model, small jobs, local Ray clusters."""

from __future__ import annotations

import os

import pytest
import yaml

os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    from embodiment.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny", hidden=32, layers=2, heads=4)


def write_job(path, model: str, storage: str, **overrides) -> str:
    """A small grid job on the embedded norms and a tiny model, written as YAML."""
    job = {
        "name": "itest",
        "models": [model],
        "norms": {"en": {"source": "embedded", "max_train": 40, "max_test": 24, "validation": 12}},
        "conditions": [{"name": "rating_en", "format": "rating", "languages": ["en"]}],
        "training": {
            "lora": True,
            "lora_rank": 4,
            "steps": 6,
            "batch_size": 4,
            "engine": "deepspeed",
            "checkpoint_every": 3,
        },
        "search": {"learning_rate": {"grid": [1.0e-3, 3.0e-3]}},
        "tune": {"max_failures": 2},
        "evaluation": {"subsets": ["all"], "layers": [0, 2], "n_boot": 20, "batch_size": 16},
        "resources": {"workers": 2, "cpus_per_worker": 1, "max_concurrent_trials": 2},
        "storage": storage,
        "seed": 0,
    }
    for key, value in overrides.items():
        job[key] = {**job[key], **value} if isinstance(value, dict) and isinstance(job.get(key), dict) else value
    path.write_text(yaml.safe_dump(job))
    return str(path)


#: the job of the fault tests and the short chaos run: one trial of 12 steps, a checkpoint every 3
FAULT_JOB = {
    "norms": {"en": {"source": "embedded", "max_train": 32, "max_test": 16}},
    "training": {"steps": 12, "checkpoint_every": 3},
    "search": {"learning_rate": 3.0e-3},
    "tune": {"max_failures": 100},  # chaos kills its training workers again and again
    "evaluation": {"layers": [2], "n_boot": 10},
    "resources": {"workers": 1, "max_concurrent_trials": 1},
}


@pytest.fixture(scope="session")
def fault_job(tmp_path_factory, tiny_model_dir) -> str:
    folder = tmp_path_factory.mktemp("faultjob")
    return write_job(folder / "job.yaml", tiny_model_dir, str(folder / "runs"), **FAULT_JOB)


@pytest.fixture(scope="session")
def fault_reference(fault_job, tmp_path_factory) -> str:
    """The uninterrupted run of :data:`FAULT_JOB` (its run folder), made once: every fault run
    and the short chaos run are compared with it."""
    import ray

    from grid.job_file import load_job
    from grid.runner import run_job

    spec = load_job(fault_job)
    try:
        summary = run_job(spec, storage=str(tmp_path_factory.mktemp("reference")), num_cpus=2, say=print)
    finally:
        ray.shutdown()  # a failed reference run must not leave its Ray to the next test
    return summary["run_dir"]


@pytest.fixture(scope="session")
def make_job():
    """The job writer itself: make_job(path, model, storage, **overrides)."""
    return write_job


@pytest.fixture
def job_file(tmp_path, tiny_model_dir):
    """Write a small job (overrides merged into its sections) and return its path."""

    def make(name: str = "job.yaml", **overrides) -> str:
        return write_job(tmp_path / name, tiny_model_dir, str(tmp_path / "runs"), **overrides)

    return make


@pytest.fixture(scope="module")
def two_node_cluster():
    """A head and a worker node, 2 logical CPUs each, on this machine (one per test module)."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on 127.0.0.1, a bucket in it, and the standard AWS variables set."""
    pytest.importorskip("moto", reason="moto[server] is in the test extras")
    from object_store import s3_server_running

    with s3_server_running(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint

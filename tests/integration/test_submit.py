"""`egrid submit`: a job sent through the Ray Jobs API of a running head (dashboard on
127.0.0.1) runs to the end on that cluster and writes its tables."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doc_commands import doc_commands
from object_store import BUCKET
from ray_processes import latest_session, stop_ray_under


from embodiment.training.distributed import free_port
from grid.cli import main as egrid
from grid.job_file import load_job
from grid.results import ResultsStore

REPO = Path(__file__).resolve().parents[2]


def _own_ports() -> list[str]:
    """Free ports for the head's agents: their defaults are fixed numbers, taken already
    where another Ray runs on this machine (a user's job), and its job agent would not start."""
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
    ]


@pytest.fixture
def ray_head(tmp_path):
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    port, dash = free_port(), free_port()
    # the cluster's `python` is this environment's, as on a real cluster's nodes
    env = {
        **os.environ,
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    subprocess.run(
        [
            *ray_cli,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            "--include-dashboard=true",
            "--disable-usage-stats",
            *_own_ports(),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    session = latest_session()  # this cluster's own: stopped below without touching any other
    url = f"http://127.0.0.1:{dash}"
    _wait_for_job_agent(url)
    yield url
    stop_ray_under(session)


def _wait_for_job_agent(url: str, timeout: float = 120) -> None:
    """A new head's job agent starts a few seconds after `ray start` returns (longer on a
    busy machine): submit a no-op until one is taken."""
    from ray.job_submission import JobSubmissionClient

    from grid.internals import enable_token_auth

    enable_token_auth()  # as egrid submit does: the head's token goes with every call
    deadline = time.time() + timeout
    while True:
        try:
            JobSubmissionClient(url).submit_job(entrypoint="true")
            return
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.time() > deadline:
                raise
            time.sleep(1)


def test_submit_runs_the_job_on_the_cluster(job_file, s3_server, ray_head, tmp_path, monkeypatch, capsys):
    """docs/cluster.md's `egrid submit` line, its storage a bucket of the local S3 server."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    job = job_file(
        training={"steps": 4},
        search={"learning_rate": 3.0e-3},
        norms={"en": {"source": "embedded", "max_train": 24, "max_test": 8}},
        evaluation={"embeddings": False},
        resources={"workers": 1, "max_concurrent_trials": 1},
    )
    storage = f"s3://{BUCKET}/submitted"
    doc = doc_commands(
        {"jobs/paper.yaml": job, "http://127.0.0.1:8265": ray_head, "s3://my-bucket/egrid_runs": storage}
    )
    monkeypatch.chdir(REPO)  # the working directory is what the job API ships
    assert egrid(doc["submit"]) == 0
    out = capsys.readouterr().out
    submission = out.split(" as ")[1].split(";")[0]
    client = JobSubmissionClient(ray_head)
    deadline = time.time() + 600
    while time.time() < deadline and client.get_job_status(submission) not in {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
    }:
        time.sleep(2)
    assert client.get_job_status(submission) == JobStatus.SUCCEEDED, client.get_job_logs(submission)[-3000:]
    assert "Per-dimension Spearman" in client.get_job_logs(submission)
    trials = ResultsStore(load_job(job).run_dir(storage)).read("trials")
    assert trials["status"].tolist() == ["TERMINATED"] and trials["steps"].tolist() == [4], trials.get("error")


def test_a_test_stops_its_own_ray_and_no_other():
    """Two clusters on this machine; stopping the first (as the fault and submit tests stop
    theirs) leaves the second running: a user's job survives `make test`."""
    import psutil

    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    sessions = []
    for _ in range(2):
        subprocess.run(
            [
                *ray_cli,
                "start",
                "--head",
                f"--port={free_port()}",
                "--num-cpus=1",
                "--include-dashboard=false",
                "--disable-usage-stats",
                *_own_ports(),
            ],
            check=True,
            capture_output=True,
        )
        sessions.append(latest_session())
    mine, theirs = sessions
    assert mine != theirs
    try:

        def alive(tmpdir):
            return [p for p in psutil.process_iter(["cmdline"]) if tmpdir in " ".join(p.info["cmdline"] or [])]

        assert alive(mine) and alive(theirs)
        killed = stop_ray_under(mine)
        assert killed and not alive(mine)
        assert alive(theirs) and all(p.is_running() for p in alive(theirs))
    finally:
        stop_ray_under(mine)
        stop_ray_under(theirs)

"""`egrid submit`: a job sent through the Ray Jobs API of a running head (dashboard on
127.0.0.1) runs to the end on that cluster and writes its tables."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from grid.cli import main as egrid
from grid.spec import load_job

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    port, dash = _free_port(), _free_port()
    # the cluster's `python` is this environment's, as on a real cluster's nodes
    env = {**os.environ, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    subprocess.run([*ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={dash}", "--include-dashboard=true", "--disable-usage-stats"],
                   check=True, capture_output=True, env=env)
    yield f"http://127.0.0.1:{dash}"
    subprocess.run([*ray_cli, "stop", "--force"], capture_output=True)


def test_submit_runs_the_job_on_the_cluster(job_file, ray_head, tmp_path, monkeypatch, capsys):
    from ray.job_submission import JobStatus, JobSubmissionClient

    job = job_file(training={"steps": 4}, search={"learning_rate": 3.0e-3},
                   norms={"en": {"source": "embedded", "max_train": 24, "max_test": 8}}, evaluation={"embeddings": False},
                   resources={"workers": 1, "max_concurrent_trials": 1})
    monkeypatch.chdir(REPO)  # the working directory is what the job API ships
    assert egrid(["submit", job, "--address", ray_head]) == 0
    out = capsys.readouterr().out
    submission = out.split(" as ")[1].split(";")[0]
    client = JobSubmissionClient(ray_head)
    deadline = time.time() + 600
    while time.time() < deadline and client.get_job_status(submission) not in {JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                                                JobStatus.STOPPED}:
        time.sleep(2)
    assert client.get_job_status(submission) == JobStatus.SUCCEEDED, client.get_job_logs(submission)[-3000:]
    assert "Per-dimension Spearman" in client.get_job_logs(submission)
    run_dir = Path(load_job(job).run_dir())
    trials = pd.read_parquet(run_dir / "tables" / "trials")
    assert trials["status"].tolist() == ["TERMINATED"] and trials["steps"].tolist() == [4]

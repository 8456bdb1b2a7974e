"""`tune: {mlflow: run}` logs every trial to MLflow (skipped where mlflow is not installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="mlflow not installed (pip install mlflow-skinny)"
)


def test_mlflow_gets_one_run_per_trial_with_its_score(job_file, tmp_path):
    import mlflow
    import ray

    from grid.runner import run_job
    from grid.job_file import load_job

    spec = load_job(
        job_file(
            training={"steps": 3},
            tune={"mlflow": "run"},
            resources={"workers": 1, "max_concurrent_trials": 1},
            evaluation={"layers": [2]},
        )
    )
    try:
        summary = run_job(spec, num_cpus=2, say=print)
    finally:
        ray.shutdown()
    run_dir = Path(summary["run_dir"])
    trials = pd.read_parquet(run_dir / "tables" / "trials")
    client = mlflow.tracking.MlflowClient(
        tracking_uri=(run_dir / "mlruns").as_uri()
    )  # file store: switch set by the run
    experiment = client.get_experiment_by_name(spec.run_name)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == len(trials) == 2
    by_trial = {r.data.tags.get("trial_name", r.info.run_name): r for r in runs}
    for row in trials.itertuples():
        run = next(r for name, r in by_trial.items() if row.trial_id in name)
        assert run.data.metrics["eval_score"] == pytest.approx(row.eval_score)
        assert float(run.data.params["learning_rate"]) in (1.0e-3, 3.0e-3)

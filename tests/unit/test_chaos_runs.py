"""The chaos run's comparison: a finished run's job taken as the chaos job, rows lost and
duplicated counted against the uninterrupted run, the metrics' largest difference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from embodiment.errors import InputError
from grid.chaos_runs import count_rows, job_of_reference, metrics_gap
from grid.job_file import load_job
from grid.spec import parse_job

JOB = {
    "name": "chaos-ref",
    "models": ["tiny"],
    "norms": {"en": {"source": "embedded", "max_train": 20, "max_test": 10}},
    "conditions": [{"name": "rating_en", "format": "rating", "languages": ["en"]}],
    "storage": "/elsewhere/runs",
}


def _finished_run(folder, status="finished"):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"job": JOB, "job_file": "job.yaml", "status": status}))
    return str(folder)


def test_a_finished_runs_job_is_rerun_with_its_storage_in_the_work_folder(tmp_path):
    job, reference = job_of_reference(tmp_path / "work", _finished_run(tmp_path / "ref"))
    spec = load_job(job, check_files=False)
    assert reference == str(tmp_path / "ref")
    assert spec.storage == str(tmp_path / "work" / "runs")
    # the same job (the same run name), stored elsewhere
    assert spec.run_name == parse_job(JOB, check_files=False).run_name


@pytest.mark.parametrize("status", ["interrupted", None])
def test_a_reference_that_is_not_a_finished_run_is_refused(tmp_path, status):
    folder = _finished_run(tmp_path / "ref", status) if status else str(tmp_path)
    with pytest.raises(InputError, match="not finished" if status else "no egrid run here"):
        job_of_reference(tmp_path / "work", folder)


def _tables(trials: dict[str, float], ratings: list[tuple[str, str]], metric: dict[str, float]):
    config = {t: json.dumps({"learning_rate": lr}) for t, lr in trials.items()}
    return {
        "trials": pd.DataFrame({"trial_id": list(trials), "config": [config[t] for t in trials]}),
        "ratings": pd.DataFrame(ratings, columns=["trial_id", "concept"]).assign(dimension="Visual"),
        "embeddings": pd.DataFrame(
            [(t, c, 2, "mean") for t, c in ratings], columns=["trial_id", "concept", "layer", "pooling"]
        ),
        "metrics": pd.DataFrame(
            [(t, "rsa", "all", None, None, v) for t, v in metric.items()],
            columns=["trial_id", "metric", "subset", "dimension", "layer", "value"],
        ),
    }


def test_rows_lost_and_duplicated_and_the_metric_gap_follow_trials_by_what_they_were():
    reference = _tables({"r1": 1e-3}, [("base", "dog"), ("r1", "dog"), ("r1", "cat")], {"base": 0.1, "r1": 0.3})
    # another run of the job: the same trial under another id, one row twice, one missing
    mine = _tables({"x9": 1e-3}, [("base", "dog"), ("x9", "dog"), ("x9", "dog")], {"base": 0.1, "x9": 0.32})
    lost, duplicated = count_rows(mine, reference)
    # per table (ratings, embeddings): cat missing, dog twice; trials: all there
    assert (lost, duplicated) == (2, 2)
    assert metrics_gap(mine, reference) == pytest.approx(0.02)
    assert np.isnan(metrics_gap(_tables({}, [], {}), reference))

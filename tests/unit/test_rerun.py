"""Running a job whose run folder already exists: a finished run is shown, not trained
again; an unfinished one is refused with the resume command (never mixed or duplicated)."""

import pandas as pd
import pytest

from embodiment.errors import InputError
from grid.results import ResultsStore
from grid.runner import run_job
from grid.spec import parse_job


def _spec(tmp_path):
    return parse_job({"name": "again", "models": ["m"], "storage": str(tmp_path)}, "again.yaml", check_files=False)


def _existing(spec, status: str) -> ResultsStore:
    store = ResultsStore(spec.run_dir())
    store.write_json("manifest.json", {"run_name": spec.run_name, "fingerprint": spec.fingerprint(), "status": status})
    store.write("trials", "trial:t1", pd.DataFrame({"trial_id": ["t1"], "format": ["rating"], "eval_score": [0.25]}))
    return store


def test_a_finished_run_is_shown_without_starting_ray(tmp_path):
    import ray

    spec = _spec(tmp_path)
    _existing(spec, "finished")
    said = []
    summary = run_job(spec, say=said.append)
    assert not ray.is_initialized()
    assert summary["trials"]["trial_id"].tolist() == ["t1"] and summary["best"]["eval_score"].tolist() == [0.25]
    assert "already finished" in said[0]


def test_an_unfinished_run_is_refused_with_the_resume_command(tmp_path):
    spec = _spec(tmp_path)
    store = _existing(spec, "running")
    (tmp_path / spec.run_name / "tune").mkdir()
    before = store.read("trials")
    with pytest.raises(InputError, match="egrid resume") as info:
        run_job(spec)
    assert "again.yaml" in str(info.value)
    pd.testing.assert_frame_equal(store.read("trials"), before)  # nothing touched
    assert ResultsStore(spec.run_dir()).read_json("manifest.json")["status"] == "running"


def test_a_folder_resumed_as_itself_may_carry_an_earlier_versions_hash():
    """`egrid resume FOLDER` reads the job back from the folder's manifest: a hash made by
    an earlier egrid version is no reason to refuse; another job in the folder is."""
    from embodiment.errors import InputError
    from grid.runner import _check_same_job

    raw = {"name": "x", "models": ["m"]}
    spec = parse_job(raw)
    old = {"fingerprint": "0123456789", "job": raw}
    _check_same_job(old, spec, "runs/x-0123456789", resume=True)
    _check_same_job({"fingerprint": spec.fingerprint(), "job": raw}, spec, "runs/x", resume=False)
    with pytest.raises(InputError, match="holds another job"):
        _check_same_job(old, spec, "runs/x-0123456789", resume=False)
    with pytest.raises(InputError, match="holds another job"):
        _check_same_job({**old, "job": {**raw, "seed": 1}}, spec, "runs/x-0123456789", resume=True)

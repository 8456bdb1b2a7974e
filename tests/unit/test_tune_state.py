"""`egrid resume` lets Tune unpickle only the tuner.pkl the run itself wrote."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest

from embodiment.errors import InputError
from grid.cli import main
from grid.tune_state import check_tune_state, tune_state_digest


def _run_folder(tmp_path, pickled: bytes, recorded: str | None):
    run = tmp_path / "demo-0123456789"
    (run / "tune").mkdir(parents=True)
    (run / "tune" / "tuner.pkl").write_bytes(pickled)
    job = {
        "name": "demo",
        "models": ["smollm2-135m"],
        "norms": {"en": {"source": "embedded", "max_train": 20, "max_test": 10}},
    }
    manifest = {"job": job, "job_file": "demo.yaml", "status": "interrupted"}
    if recorded is not None:
        manifest["tune_state_sha256"] = recorded
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_the_recorded_tuner_state_passes_and_a_tampered_one_is_refused(tmp_path):
    original = pickle.dumps({"the pickle": "Tune wrote"})
    run = _run_folder(tmp_path, original, hashlib.sha256(original).hexdigest())
    manifest = json.loads((run / "manifest.json").read_text())
    assert tune_state_digest(str(run)) == hashlib.sha256(original).hexdigest()
    check_tune_state(str(run), manifest)  # unchanged: fine
    (run / "tune" / "tuner.pkl").write_bytes(pickle.dumps({"another": "pickle"}))
    with pytest.raises(InputError, match="not the file this run wrote"):
        check_tune_state(str(run), manifest)


def test_a_tuner_state_without_digest_needs_the_users_word(tmp_path):
    run = _run_folder(tmp_path, pickle.dumps("old run"), None)
    with pytest.raises(InputError, match="--trust-tune-state"):
        check_tune_state(str(run), {})
    check_tune_state(str(run), {}, trust=True)


def test_egrid_resume_refuses_a_tampered_folder_in_one_line_before_starting_anything(tmp_path, capsys):
    # a whole pickle (a truncated one would be set aside by the storage repair, never read)
    run = _run_folder(tmp_path, pickle.dumps({"tampered": True}), hashlib.sha256(b"the original").hexdigest())
    assert main(["resume", str(run), "--no-report"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("egrid: error:")]
    assert len(errors) == 1 and "refusing to unpickle it" in errors[0]
    import ray

    assert not ray.is_initialized()  # refused before Ray started

"""Every place egrid relies on Ray's, Tune's or Ray Train's internals, in one module.

Public APIs do not expose these, so each is a guess about one Ray version's layout; an
upgrade that moves one breaks this file (and ``tests/unit/test_internals.py``, which
names the version each was checked against), not the modules that use them. Checked
against Ray 2.60.0 (Train V2). DeepSpeed's one internal (its CPU op table) is
:func:`embodiment.training.distributed._skip_cpu_shm_comm_build`, below Ray's layer; Ray Data's logging
config names its handler classes in ``grid/ray_data_logging.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

#: Ray version these were checked against
CHECKED_RAY = "2.60"

#: Tune's experiment state, written in place in ``<run>/tune`` (the trial list and
#: each trial's last result, as JSON)
TUNE_STATE_PREFIX = "experiment_state-"
#: Tune's pickled Tuner, written in place beside it (never unpickled by egrid)
TUNE_TUNER_FILE = "tuner.pkl"
#: each Ray Train run's checkpoint bookkeeping, rewritten in place
TRAIN_SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"


def is_tune_state_file(name: str) -> bool:
    """Whether a file in Tune's experiment folder is state Tune rewrites in place."""
    return not name.startswith(".") and (name.endswith(".json") or name == TUNE_TUNER_FILE)


def is_tune_experiment_state(relative_path: str) -> bool:
    """Whether a run-relative path (``tune/experiment_state-....json``) is Tune's trial list."""
    path = PurePosixPath(relative_path)
    return path.parent.name == "tune" and path.name.startswith(TUNE_STATE_PREFIX)


def trial_storage(trial) -> tuple[str, object]:
    """(path, pyarrow filesystem) of the run folder a Tune trial writes to (after a
    restore, where the folder is now, even if it moved)."""
    return trial.storage.storage_fs_path, trial.storage.storage_filesystem


def enable_token_auth() -> None:
    """Send Ray's cluster token with job-API calls where one is at hand (Ray's CLI does
    this; a plain client process must ask). No-op on a Ray without token auth."""
    try:
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    except ImportError:
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def train_report_logger():
    """The logger of Ray Train's "Reporting training result N" line (INFO, every report).

    Named by its file's path, so ``RunConfig(logging_config=...)``'s ``ray.train`` filter
    does not reach it. None on a Ray layout without it.
    """
    import logging

    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return None
    return logging.getLogger(context.__file__)


def read_trial_states(tune_dir: str | Path) -> list[dict]:
    """Each trial's id, state, config, failures and last reported result, read from Tune's
    experiment-state JSON with ``json`` alone (``ExperimentAnalysis`` would unpickle
    objects stored in the run folder, which may come from elsewhere). ``tune_dir``: a local
    folder or a storage URI.

    Returns:
        One dict per trial (empty while the run has not written its state yet); ``training``
        is the last result that carried a step and loss (the final one holds the evaluation).
    """
    import pyarrow.fs as pafs

    from grid.results import _filesystem

    fs, base = _filesystem(str(tune_dir))
    try:
        listed = fs.get_file_info(pafs.FileSelector(base, recursive=False))
    except (FileNotFoundError, OSError):
        return []
    states = sorted(
        (f for f in listed if f.base_name.startswith(TUNE_STATE_PREFIX) and f.base_name.endswith(".json")),
        key=lambda f: (f.mtime_ns or 0, f.base_name),
    )
    if not states:
        return []
    out = []
    for trial_json, runtime_json in json.loads(_read_text(fs, states[-1].path)).get("trial_data", []):
        trial, runtime = json.loads(trial_json), json.loads(runtime_json)
        out.append(
            {
                "trial_id": trial.get("trial_id"),
                "status": trial.get("status"),
                "config": trial.get("config", {}),
                "num_failures": runtime.get("num_failures", 0),
                "last_result": runtime.get("last_result") or {},
                "training": _last_training_result(fs, f"{base}/{trial.get('relative_logdir')}/result.json"),
            }
        )
    return out


def _read_text(fs, path: str) -> str:
    with fs.open_input_stream(path) as src:
        return src.read().decode("utf-8")


def _last_training_result(fs, path: str) -> dict:
    try:
        text = _read_text(fs, path)
    except (FileNotFoundError, OSError):
        return {}
    last = {}
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # the line Tune is writing right now
            continue
        if "loss" in row and "step" in row:
            last = row
    return last

"""Tune's pickled state on shared storage: egrid records the sha256 of ``tune/tuner.pkl``
each time Tune writes it, and a resume lets Tune unpickle only that file."""

from __future__ import annotations

import hashlib

from embodiment.errors import InputError
from grid.internals import TUNE_TUNER_FILE
from grid.results import _filesystem


def tune_state_digest(run_dir: str) -> str | None:
    """sha256 of the run's ``tune/tuner.pkl`` (None where Tune has not written one)."""
    fs, base = _filesystem(run_dir)
    try:
        with fs.open_input_stream(f"{base}/tune/{TUNE_TUNER_FILE}") as src:
            return hashlib.sha256(src.read()).hexdigest()
    except (FileNotFoundError, OSError):
        return None


def check_tune_state(run_dir: str, manifest: dict, *, trust: bool = False) -> None:
    """Refuse to let Tune unpickle a ``tuner.pkl`` that is not the one this run wrote.

    A pickle runs code when it is read, and run folders live on shared storage: egrid
    records the file's sha256 in the manifest each time Tune writes it, and ``resume``
    compares before Tune reads it.

    Raises:
        InputError: the file differs from the recorded digest, or no digest was recorded
            (a run started before egrid recorded them) and ``trust`` is not set.
    """
    found = tune_state_digest(run_dir)
    if found is None or trust:
        return
    recorded = manifest.get("tune_state_sha256")
    if recorded is None:
        raise InputError(
            f"tune/{TUNE_TUNER_FILE} has no digest in manifest.json (a run started before egrid recorded "
            "one), so it cannot be checked before Tune unpickles it; if you trust every writer of this "
            "folder, resume with --trust-tune-state",
            source=run_dir,
            key="tune_state_sha256",
        )
    if found != recorded:
        raise InputError(
            f"tune/{TUNE_TUNER_FILE} is not the file this run wrote (sha256 {found[:12]}..., recorded "
            f"{recorded[:12]}...); refusing to unpickle it. Restore the run folder from a copy you trust, "
            "or start the run over in a new folder",
            source=run_dir,
            key="tune_state_sha256",
        )

"""grid/internals.py: each guess about Ray's internals still holds on the installed Ray
(checked against Ray 2.60.0, Train V2). When Ray is upgraded and one of these fails,
grid/internals.py is the one file to change."""

from __future__ import annotations

import inspect
import logging

import ray

from grid import internals


def test_the_ray_these_were_checked_against():
    assert ray.__version__.startswith(internals.CHECKED_RAY + "."), (
        f"Ray {ray.__version__}: re-check grid/internals.py against it, then update CHECKED_RAY")


def test_train_report_line_comes_from_the_logger_we_quiet():
    from ray.train.v2._internal.execution import context

    logger = internals.train_report_logger()
    assert logger is context.logger
    source = inspect.getsource(context)
    assert "Reporting training result" in source and "logger.info(" in source


def test_tune_state_names_are_the_ones_tune_writes():
    from ray.tune.execution.tune_controller import TuneController

    assert TuneController.CKPT_FILE_TMPL == internals.TUNE_STATE_PREFIX + "{}.json"
    assert internals.is_tune_experiment_state("tune/experiment_state-2026-12-02_14-00-00.json")
    assert not internals.is_tune_experiment_state("train/x/experiment_state-1.json")
    assert internals.is_tune_state_file("tuner.pkl") and internals.is_tune_state_file("search_gen_state-1.json")
    assert not internals.is_tune_state_file(".hidden.json") and not internals.is_tune_state_file("events.out")


def test_train_snapshot_name_is_the_checkpoint_managers():
    from ray.train.v2._internal import constants

    assert constants.CHECKPOINT_MANAGER_SNAPSHOT_FILENAME == internals.TRAIN_SNAPSHOT_FILE


def test_trial_storage_attributes_exist_on_tunes_storage_context():
    from ray.train._internal.storage import StorageContext

    source = inspect.getsource(StorageContext)
    assert "self.storage_fs_path" in source and "self.storage_filesystem" in source


def test_token_auth_helper_is_importable_or_absent_quietly():
    internals.enable_token_auth()  # must not raise, whether or not a token is at hand
    logging.getLogger(__name__).debug("token auth checked")


def test_embodiment_never_imports_ray():
    """The floors: embodiment/ (the science) runs in one process without Ray; only grid/
    brings Ray in. Import every embodiment module in a fresh interpreter and look."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(internals.__file__).resolve().parents[1]
    modules = sorted(".".join(p.relative_to(root).with_suffix("").parts) for p in (root / "embodiment").rglob("*.py"))
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m.removesuffix('.__init__'))\n"
            "print(sorted(k for k in sys.modules if k == 'ray' or k.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout[-500:]

"""grid/internals.py: each guess about Ray's internals still holds on the installed Ray
(checked against Ray 2.60.0, Train V2). When Ray is upgraded and one of these fails,
grid/internals.py is the one file to change."""

from __future__ import annotations

import inspect
import io
import tokenize

import pytest
import ray

from grid import internals


def _code(obj) -> str:
    """``obj``'s source without its comments: a name that survives only in a comment
    does not count as still being there."""
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(obj)).readline)
    return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT)


def test_code_ignores_comments():
    assert "kept_name" in _code(_code_probe) and "gone_name" not in _code(_code_probe)


def _code_probe():  # gone_name
    return "kept_name"


def test_the_ray_these_were_checked_against():
    assert ray.__version__.startswith(internals.CHECKED_RAY + "."), (
        f"Ray {ray.__version__}: re-check grid/internals.py against it, then update CHECKED_RAY"
    )


def test_train_report_line_comes_from_the_logger_we_quiet():
    from ray.train.v2._internal.execution import context

    logger = internals.train_report_logger()
    assert logger is context.logger
    source = _code(context)
    assert "Reporting training result" in source and "logger . info (" in source


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

    source = _code(StorageContext)
    assert "self . storage_fs_path" in source and "self . storage_filesystem" in source


_TOKEN_PROBE = """
import os
from grid import internals
from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled
internals.enable_token_auth()
print(os.environ.get("RAY_AUTH_MODE"), get_auth_headers_if_auth_enabled({}))
"""


@pytest.mark.parametrize("token", ["egrid-test-token-0123456789abcdef", None])
def test_token_auth_sends_the_clusters_token_only_where_one_is_at_hand(tmp_path, token):
    """A client process with a token at Ray's default path sends it with job-API calls;
    without one it turns nothing on. Each case in a fresh interpreter (Ray caches the mode)."""
    import os
    import subprocess
    import sys

    if token:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text(token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", _TOKEN_PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    mode, headers = out.stdout.strip().split(" ", 1)
    if token:
        assert mode == "token" and token in headers
    else:
        assert mode == "None" and headers == "{}"


def test_embodiment_never_imports_ray():
    """The floors: embodiment/ (the science) runs in one process without Ray; only grid/
    brings Ray in. Import every embodiment module in a fresh interpreter and look."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(internals.__file__).resolve().parents[1]
    modules = sorted(".".join(p.relative_to(root).with_suffix("").parts) for p in (root / "embodiment").rglob("*.py"))
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m.removesuffix('.__init__'))\n"
        "print(sorted(k for k in sys.modules if k == 'ray' or k.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout[-500:]

"""`egrid` as a user runs it: its own process, so a test can interrupt it, and its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def start_egrid(*args: str, cwd: str | os.PathLike | None = None, **popen) -> subprocess.Popen:
    """``python -m grid.cli ARGS`` in a session of its own (Ctrl-C reaches it and its children),
    unbuffered, with this checkout importable from any ``cwd``; stdout and stderr piped as text
    unless ``popen`` says otherwise."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen(
        [sys.executable, "-m", "grid.cli", *args], cwd=cwd, env=env, start_new_session=True, **popen
    )


def finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str, str]:
    """Wait for ``proc``: (exit code, stdout, stderr)."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out or "", err or ""

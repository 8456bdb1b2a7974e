"""How a run shows its progress: a live display in a terminal, plain lines in a file.

In a terminal, Ray Data's and Tune's live displays stay. When stdout is a file or a pipe
(``egrid run job.yaml > log``, ``nohup``, CI, every ``egrid submit`` driver) their redraws
would flood it, so ``plain`` turns them off and the run prints one timestamped line per
stage, per trial event and per evaluation pass at 0 / 50 / 100 %, instead.
``egrid run --progress auto|plain|live`` chooses (``auto``: plain unless stdout is a
terminal). The choice travels to Ray's workers through their environment, so the trial
and scorer processes print the same way as the driver.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
from pathlib import Path

MODES = ("auto", "plain", "live")
#: the environment variable the mode travels in (driver -> Ray workers)
MODE_ENV = "EGRID_PROGRESS"
#: Ray Data's logging with its console handler at WARNING (its file log keeps INFO)
RAY_DATA_LOGGING = Path(__file__).resolve().with_name("ray_data_logging.yaml")


def resolve(mode: str | None = None, stream=None) -> str:
    """``plain`` or ``live``: the mode asked for, else the environment's, else by the terminal.

    Args:
        mode: ``auto``, ``plain``, ``live`` or None (the environment's, else ``auto``).
        stream: what ``auto`` checks for a terminal (default stdout).

    Raises:
        ValueError: ``mode`` is not one of :data:`MODES`.
    """
    mode = mode or os.environ.get(MODE_ENV) or "auto"
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    stream = stream if stream is not None else sys.stdout
    isatty = getattr(stream, "isatty", None)
    return "live" if isatty is not None and isatty() else "plain"


def environment(mode: str, *, submitted: bool = False) -> dict[str, str]:
    """Environment variables that make Ray's processes show progress the ``mode`` way.

    Args:
        mode: ``plain`` or ``live`` (``auto`` is resolved here, by this process's stdout).
        submitted: for a job sent through the Jobs API: its processes start in folders of
            the cluster's choosing, so no file of this checkout is named (Ray Data's own
            INFO lines then stay in the job's log; its progress redraws still go).
    """
    mode = resolve(mode)
    if mode != "plain":
        return {MODE_ENV: mode}
    env = {
        MODE_ENV: "plain",
        "RAY_DATA_DISABLE_PROGRESS_BARS": "1",  # no per-10 s progress blocks per dataset
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # no "Loading weights" bars per model load
        "RAY_COLOR_PREFIX": "0",  # no colour codes around workers' "(pid=...)" prefixes
        "TQDM_DISABLE": "1",
    }
    if not submitted:
        env["RAY_DATA_LOGGING_CONFIG"] = str(RAY_DATA_LOGGING)  # no "starting / finished" INFO lines
    return env


def apply(mode: str) -> dict[str, str]:
    """Set this process up for ``mode`` and return the environment its Ray workers need."""
    env = environment(mode)
    os.environ.update(env)
    if mode == "plain" and "ray.data" in sys.modules:  # already imported: its defaults are read
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
    return env


def quiet_train_worker() -> None:
    """In a Ray Train worker, in plain mode: no "Reporting training result" line per report.

    Ray 2.60 logs it at INFO from a logger named by its file's path, which the ``ray.train``
    filter of ``RunConfig(logging_config=...)`` does not match; the trial's own progress
    lines (:func:`grid.tuning.progress_callback`) say the step and loss instead.
    """
    if not is_plain():
        return
    import logging

    from grid.internals import train_report_logger

    logger = train_report_logger()
    if logger is not None:  # another Ray layout: nothing to quiet
        logger.setLevel(logging.WARNING)


def is_plain() -> bool:
    """Whether this process (driver or Ray worker) prints plain lines."""
    return os.environ.get(MODE_ENV) == "plain"


_SAY_LOCK = threading.Lock()


def say(message: str) -> None:
    """One timestamped progress line on stdout, whole: passes running in threads side by
    side never interleave their lines (``print`` writes the text and its newline apart)."""
    line = f"[egrid {dt.datetime.now().strftime('%H:%M:%S')}] {message}\n"
    with _SAY_LOCK:
        sys.stdout.write(line)
        sys.stdout.flush()


class Milestones:
    """Says a long pass's progress at 0, 50 and 100 % (plain lines; nothing in between).

    Args:
        label: what the pass is, e.g. "baseline ratings: 1,800 prompts".
        total: units of work in the pass.
        emit: where lines go (default :func:`say`).
    """

    def __init__(self, label: str, total: int, emit=say):
        self.label, self.total, self.emit = label, max(0, int(total)), emit
        self.done = 0
        self._next = 0.0  # the next fraction to announce

    def advance(self, n: int) -> None:
        """Count ``n`` more units; announce each of 0 / 50 / 100 % once, as it is passed."""
        if self._next == 0.0:
            self.emit(f"{self.label}: started")
            self._next = 0.5
        self.done += int(n)
        fraction = self.done / self.total if self.total else 1.0
        if self._next == 0.5 and fraction >= 0.5 and fraction < 1.0:
            self.emit(f"{self.label}: 50 % ({self.done:,} of {self.total:,})")
            self._next = 1.0
        if self._next <= 1.0 and fraction >= 1.0:
            self.emit(f"{self.label}: done ({self.total:,})")
            self._next = 2.0

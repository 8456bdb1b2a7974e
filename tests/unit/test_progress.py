"""Progress for terminals and for files (grid.progress): the mode each stream gets, what
the plain mode turns off in Ray's processes, and the 0 / 50 / 100 % lines."""

from __future__ import annotations

import io
import re
import logging.config

import pytest
import yaml

from grid import progress
from grid.progress import Milestones


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_plain_for_files_and_pipes_and_live_in_a_terminal(monkeypatch):
    monkeypatch.delenv(progress.MODE_ENV, raising=False)
    assert progress.resolve("auto", io.StringIO()) == "plain"
    assert progress.resolve("auto", _Terminal()) == "live"
    assert progress.resolve(None, _Terminal()) == "live"
    assert progress.resolve("plain", _Terminal()) == "plain"  # the flag wins over the terminal
    assert progress.resolve("live", io.StringIO()) == "live"
    monkeypatch.setenv(progress.MODE_ENV, "plain")  # a Ray worker: the driver's choice
    assert progress.resolve(None, _Terminal()) == "plain"
    with pytest.raises(ValueError, match="expected one of auto, plain, live"):
        progress.resolve("quiet")


def test_plain_environment_turns_off_ray_data_redraws_and_its_console_info_lines():
    env = progress.environment("plain")
    assert env["RAY_DATA_DISABLE_PROGRESS_BARS"] == "1" and env[progress.MODE_ENV] == "plain"
    config = yaml.safe_load(open(env["RAY_DATA_LOGGING_CONFIG"], encoding="utf-8"))
    assert config["handlers"]["console"]["level"] == "WARNING"
    assert set(config["loggers"]["ray.data"]["handlers"]) == {"file", "console"}  # the session log keeps INFO
    # every class the config names exists in this Ray (it is read by Ray Data's dictConfig)
    for handler in config["handlers"].values():
        logging.config.BaseConfigurator({}).resolve(handler["class"])
    for item in config["filters"].values():
        logging.config.BaseConfigurator({}).resolve(item["()"])
    assert progress.environment("live") == {progress.MODE_ENV: "live"}
    submitted = progress.environment("plain", submitted=True)  # names no file of this checkout
    assert "RAY_DATA_LOGGING_CONFIG" not in submitted and submitted["RAY_DATA_DISABLE_PROGRESS_BARS"] == "1"


def test_apply_plain_sets_the_driver_and_returns_the_workers_environment(monkeypatch):
    import ray.data

    ctx = ray.data.DataContext.get_current()
    monkeypatch.setattr(ctx, "enable_progress_bars", True)
    for key in progress.environment("plain"):
        monkeypatch.delenv(key, raising=False)
    env = progress.apply("plain")
    assert progress.is_plain() and ctx.enable_progress_bars is False
    assert env["RAY_DATA_DISABLE_PROGRESS_BARS"] == "1"


def test_milestones_say_start_half_and_done_once_each():
    lines: list[str] = []
    marks = Milestones("ratings", 10, emit=lines.append)
    for _ in range(10):
        marks.advance(1)
    marks.advance(0)
    assert lines == ["ratings: started", "ratings: 50 % (5 of 10)", "ratings: done (10)"]


def test_milestones_skip_the_half_line_when_one_block_finishes_everything():
    lines: list[str] = []
    marks = Milestones("embeddings", 7, emit=lines.append)
    marks.advance(3)
    marks.advance(4)
    assert lines == ["embeddings: started", "embeddings: done (7)"]
    lines.clear()
    whole = Milestones("choices", 4, emit=lines.append)
    whole.advance(4)
    assert lines == ["choices: started", "choices: done (4)"]


def test_plain_train_workers_drop_ray_trains_per_report_line(monkeypatch):
    import logging

    from ray.train.v2._internal.execution import context

    logger = logging.getLogger(context.__file__)
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    monkeypatch.setenv(progress.MODE_ENV, "live")
    progress.quiet_train_worker()
    assert logger.level == logging.NOTSET  # live: untouched
    monkeypatch.setenv(progress.MODE_ENV, "plain")
    progress.quiet_train_worker()
    assert logger.level == logging.WARNING and not logger.isEnabledFor(logging.INFO)
    assert context.logger is logger  # the logger Ray reports through is the one quieted


def test_lines_said_from_threads_side_by_side_are_never_interleaved(monkeypatch):
    import threading
    import time

    from grid.progress import say

    class Recorder:
        def __init__(self):
            self.text = ""

        def write(self, s):
            for ch in s:  # a character at a time, yielding to other threads between them
                self.text += ch
                time.sleep(0)
            return len(s)

        def flush(self):
            pass

    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    threads = [threading.Thread(target=lambda k=k: [say(f"pass {k} line {i}") for i in range(30)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.text.splitlines()
    assert len(lines) == 120 and all(re.fullmatch(r"\[egrid \d\d:\d\d:\d\d\] pass \d line \d+", line) for line in lines)

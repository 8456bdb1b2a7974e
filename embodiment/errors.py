"""One error type for bad input, and the "did you mean" helper every loader uses.

A user who mistypes a column or a YAML key should get one message that names the file,
the key or column, and what was expected -- never a bare traceback. Every loader raises
:class:`InputError`; the CLI prints its message and exits non-zero. A run folder
that fills up or turns read-only mid-run raises :class:`StorageError`, which says how to resume.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable


class InputError(ValueError):
    """Bad user input: a file, a column, a key or a value that cannot be used.

    Args:
        message: what is wrong and what was expected.
        source: the file (or YAML job, or table) the problem is in.
        key: the column, YAML path or argument that is wrong, if one is.
    """

    def __init__(self, message: str, *, source: object | None = None, key: str | None = None):
        self.source = None if source is None else str(source)
        self.key = key
        parts = []
        if self.source:
            parts.append(self.source)
        if key:
            parts.append(key)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class StorageError(OSError):
    """The run folder cannot be written (full, read-only, no permission).

    Args:
        run_dir: the run folder.
        cause: the OSError the storage gave.
    """

    def __init__(self, run_dir: str, cause: OSError):
        self.run_dir = run_dir
        reason = os.strerror(cause.errno) if cause.errno else (cause.strerror or str(cause))
        super().__init__(
            cause.errno,
            f"storage cannot be written: {reason} ({run_dir}); the run stopped and the "
            f"tables already written are complete. Free space or make the folder writable, then: "
            f"egrid resume {run_dir}",
        )


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' (did you mean X?)' for the closest of ``choices`` to ``name``, or ''."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?)"

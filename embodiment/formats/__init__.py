"""Task formats: learning objectives that are also evaluations, in one registry."""

from __future__ import annotations

from embodiment.errors import InputError, did_you_mean
from embodiment.formats.base import FORMATS, Evaluation, TaskData, TaskFormat

# Each module registers its format as it is imported (@register_format); the order here
# is the order FORMATS lists them in. A new objective is one new module, imported here.
from embodiment.formats import rating, mcq, regression, pairwise, alignment  # noqa: E402,F401  (registration)
from embodiment.formats.alignment import alignment_loss  # noqa: E402


def get_format(name: str) -> TaskFormat:
    """A fresh instance of the format called ``name``."""
    if name not in FORMATS:
        raise InputError(f"unknown task format {name!r}{did_you_mean(name, FORMATS)}; known: {', '.join(FORMATS)}", key="format")
    return FORMATS[name]()


__all__ = ["FORMATS", "Evaluation", "TaskData", "TaskFormat", "alignment_loss", "get_format"]

"""Task formats: learning objectives that are also evaluations, in one registry."""

from __future__ import annotations

from embodiment.formats.base import FORMATS, Evaluation, TaskData, TaskFormat
from embodiment.registry import lookup

# Each module registers its format as it is imported (@register_format); the order here
# is the order FORMATS lists them in. A new objective is one new module, imported here.
from embodiment.formats import rating, mcq, regression, pairwise, alignment  # noqa: E402,F401  (registration)
from embodiment.formats.alignment import alignment_loss  # noqa: E402


def get_format(name: str) -> TaskFormat:
    """A fresh instance of the format called ``name``."""
    return lookup(FORMATS, name, what="task format", key="format")()


__all__ = ["FORMATS", "Evaluation", "TaskData", "TaskFormat", "alignment_loss", "get_format"]

"""Task formats: learning objectives that are also evaluations, in one registry."""

from __future__ import annotations

from embodiment.errors import InputError, did_you_mean
from embodiment.formats.alignment import AlignmentFormat, alignment_loss
from embodiment.formats.base import Evaluation, TaskData, TaskFormat
from embodiment.formats.mcq import MultipleChoiceFormat
from embodiment.formats.pairwise import PairwiseFormat
from embodiment.formats.rating import RatingFormat
from embodiment.formats.regression import RegressionHeadFormat

FORMATS: dict[str, type[TaskFormat]] = {
    cls.name: cls for cls in (RatingFormat, MultipleChoiceFormat, RegressionHeadFormat, PairwiseFormat, AlignmentFormat)
}


def get_format(name: str) -> TaskFormat:
    """A fresh instance of the format called ``name``."""
    if name not in FORMATS:
        raise InputError(f"unknown task format {name!r}{did_you_mean(name, FORMATS)}; known: {', '.join(FORMATS)}", key="format")
    return FORMATS[name]()


__all__ = ["FORMATS", "Evaluation", "TaskData", "TaskFormat", "alignment_loss", "get_format"]

"""Correlations over bootstrap resamples of concepts, from each concept's count in the resample.

A resample drawn with replacement holds concept i ``c_i`` times. Its Pearson r is the
count-weighted Pearson of the original values, and its Spearman rho the weighted Pearson
of weighted average ranks: in one column's sorted order, a value's average rank in the
resample is the count of all smaller values plus half its tie group's count plus 1/2. So
one sort per column serves every resample: a gather, a prefix sum and weighted sums,
O(n) a resample instead of sorting the written-out resample (O(n log n)) twice.
``tests/unit/test_correlation.py`` checks both against scipy on the written-out resamples.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def counts_of(idx: np.ndarray, n: int) -> np.ndarray:
    """Each concept's count in each resample: (b, n) row indices drawn with replacement
    to (b, n) float64 counts (a 1-d ``idx`` is one resample: shape (1, n))."""
    idx = np.atleast_2d(np.asarray(idx))
    rows = idx.shape[0]
    flat = (idx + (np.arange(rows) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


class SortedColumn:
    """One column's sorted order and tie groups, for its resamples' ranks and constancy.

    Args:
        values: the column (n,), without NaN.
    """

    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, dtype=np.float64)
        self.order = np.argsort(self.values, kind="stable")
        ordered = self.values[self.order]
        new_group = np.empty(ordered.size, dtype=bool)
        new_group[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
        #: each sorted position's tie group, and each group's last position
        self.group = np.cumsum(new_group) - 1
        self.group_end = np.flatnonzero(np.append(new_group[1:], True))
        self.ties = self.group_end.size < ordered.size

    def _sorted(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per resample, the counts in sorted order, their prefix sums at each tie group's
        end, and each tie group's count."""
        ordered = counts[:, self.order]
        ends = np.cumsum(ordered, axis=1)[:, self.group_end]
        group = ends.copy()
        group[:, 1:] -= ends[:, :-1]
        return ordered, ends, group

    def constant(self, counts: np.ndarray) -> np.ndarray:
        """Per resample (rows of ``counts``): does it hold one distinct value only?"""
        return (self._sorted(counts)[2] > 0).sum(axis=1) <= 1

    def ranks(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per resample, each concept's average rank in it (concept order; meaningless where
        its count is 0) and whether the resample is constant."""
        ordered, ends, group = self._sorted(counts)
        if self.ties:
            # a tie group's average rank: halfway between the count before it and the count up to its end, plus 1/2
            ranked = ((ends - group + ends + 1.0) / 2.0)[:, self.group]
        else:  # every group one position: the prefix sums are the ends
            ranked = ends - (ordered - 1.0) / 2.0
        out = np.empty_like(ranked)
        out[:, self.order] = ranked
        return out, (group > 0).sum(axis=1) <= 1


def weighted_pearson_rows(counts: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each resample: rows of ``counts`` weighting ``x`` and ``y`` ((b, n) or
    (n,)); clipped to [-1, 1]."""
    total = counts.sum(axis=1, keepdims=True)
    dx = x - (counts * x).sum(axis=1, keepdims=True) / total
    dy = y - (counts * y).sum(axis=1, keepdims=True) / total
    weighted = counts * dx
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (weighted * dy).sum(axis=1) / np.sqrt((weighted * dx).sum(axis=1) * (counts * dy * dy).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


def _spearman(x: SortedColumn, y: SortedColumn, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rank_x, flat_x = x.ranks(counts)
    rank_y, flat_y = y.ranks(counts)
    return weighted_pearson_rows(counts, rank_x, rank_y), flat_x, flat_y


def _pearson(x: SortedColumn, y: SortedColumn, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return weighted_pearson_rows(counts, x.values, y.values), x.constant(counts), y.constant(counts)


#: Correlation methods over resamples by name: (model column, human column, (b, n) counts)
#: -> (b coefficients, model side constant, human side constant); the coefficient of a
#: resample with a constant side is left to the caller (NaN or 0).
RESAMPLED: dict[str, Callable[[SortedColumn, SortedColumn, np.ndarray], tuple]] = {
    "spearman": _spearman,
    "pearson": _pearson,
}


def mean_of_columns(method: str, columns: list[tuple[SortedColumn, SortedColumn]], counts: np.ndarray) -> np.ndarray:
    """The mean ``method`` coefficient over (model, human) column pairs of each resample
    (the same resample for every pair): a model column constant in a resample counts 0
    there; NaN where a human column is constant in it."""
    total = np.zeros(len(counts))
    for model_column, human_column in columns:
        r, flat_model, flat_human = RESAMPLED[method](model_column, human_column, counts)
        total += np.where(flat_human, np.nan, np.where(flat_model, 0.0, r))
    return total / max(len(columns), 1)


def resampled_correlations(method: str, x: SortedColumn, y: SortedColumn, counts: np.ndarray) -> np.ndarray:
    """The ``method`` coefficient of each resample (rows of ``counts``); NaN where a side
    is constant in it."""
    r, flat_x, flat_y = RESAMPLED[method](x, y, counts)
    return np.where(flat_x | flat_y, np.nan, r)

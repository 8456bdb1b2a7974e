"""Is one model's score beyond another's? A paired bootstrap of the difference.

Two models rated on the same concepts (or answering the same questions) are compared by
resampling the shared items once per draw and scoring both models on that draw: the
difference's interval carries what the two scores share, which two separate intervals
ignore (their overlap is a much weaker and often misleading test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embodiment.metrics.bootstrap import percentile_interval
from embodiment.metrics.resampled import SortedColumn, counts_of, mean_of_columns

#: a statistic of the items ``idx`` (a resample of row indices, with repeats)
Statistic = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Difference:
    """``a - b`` on the same items, with its paired bootstrap interval.

    Attributes:
        value: the difference on all items.
        ci_low: lower bound of the percentile interval (NaN without bootstrap).
        ci_high: upper bound.
        p: two-sided bootstrap p of a zero difference: twice the smaller share of
            resampled differences on either side of zero, never below 1 / (B + 1) for B
            resamples (B draws cannot tell a p below that; NaN without bootstrap).
        n: items compared.
    """

    value: float
    ci_low: float
    ci_high: float
    p: float
    n: int


class MeanSpearman:
    """A model's mean Spearman over dimensions on a resample of the rows of its (n, d)
    ratings and the humans': the statistic the paired comparisons of ratings resample.

    Called with ``idx`` (rows, with repeats) it gives the statistic of those rows;
    :meth:`of_counts` gives it for many resamples at once from each row's count in them
    (:mod:`embodiment.metrics.resampled`). Rows missing a rating are left out of every
    resample, as :func:`~embodiment.metrics.mean_correlation` leaves them out.
    """

    def __init__(self, model: np.ndarray, human: np.ndarray):
        x, y = np.asarray(model, dtype=np.float64), np.asarray(human, dtype=np.float64)
        self.n = len(x)
        self.keep = ~(np.isnan(x) | np.isnan(y)).any(axis=1)
        x, y = x[self.keep], y[self.keep]
        self.columns = [(SortedColumn(x[:, j]), SortedColumn(y[:, j])) for j in range(x.shape[1])]

    def __call__(self, idx: np.ndarray) -> float:
        return float(self.of_counts(counts_of(idx, self.n))[0])

    def of_counts(self, counts: np.ndarray) -> np.ndarray:
        """The statistic of each resample: rows of (b, n) counts; NaN for one of fewer
        than 3 complete rows or with a constant human column; a constant model column counts 0."""
        counts = counts[:, self.keep]
        return np.where(counts.sum(axis=1) >= 3, mean_of_columns("spearman", self.columns, counts), np.nan)


def mean_spearman_of(model: np.ndarray, human: np.ndarray) -> MeanSpearman:
    """A model's mean Spearman over dimensions as a statistic of resampled rows
    (:class:`MeanSpearman`)."""
    return MeanSpearman(model, human)


def paired_difference(
    a: Statistic, b: Statistic, n: int, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> Difference:
    """The difference of two statistics over the same ``n`` items, with a paired bootstrap.

    Args:
        a: statistic of model a on rows ``idx`` (e.g. its mean Spearman or RSA over those concepts).
        b: the same statistic of model b.
        n: the number of shared items.
        n_boot: resamples (0: the difference only).
        ci: confidence level of the percentile interval.
        seed: seed of the resampling.
    """
    return paired_differences({"a": a, "b": b}, [("a", "b")], n, n_boot=n_boot, ci=ci, seed=seed)[("a", "b")]


def paired_differences(
    statistics: dict[str, Statistic],
    pairs: list[tuple[str, str]],
    n: int,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    block: int = 128,
) -> dict[tuple[str, str], Difference]:
    """:func:`paired_difference` for many pairs of models at once: each draw of items
    scores every model once, and every pair's difference is taken on that same draw.

    Args:
        statistics: model name -> its statistic of rows ``idx``.
        pairs: (a, b) names whose difference ``a - b`` is wanted.
        n: the number of shared items.
        n_boot: resamples (0: the differences only).
        ci: confidence level of the percentile intervals.
        seed: seed of the resampling.
        block: resamples scored at once by a statistic with ``of_counts`` (batched:
            :class:`MeanSpearman`, :class:`~embodiment.metrics.ResampledRSA`).
    """
    every = np.arange(n)
    full = {name: float(stat(every)) for name, stat in statistics.items()}
    if not n_boot or n < 3:
        return {(a, b): Difference(full[a] - full[b], float("nan"), float("nan"), float("nan"), n) for a, b in pairs}
    rng = np.random.default_rng(seed)
    needed = list(dict.fromkeys(name for pair in pairs for name in pair))
    draws = {name: np.empty(n_boot) for name in needed}
    for start in range(0, n_boot, block):
        # drawn one resample at a time, in order: the same resamples whatever the block
        idx = np.stack([rng.integers(0, n, size=n) for _ in range(min(block, n_boot - start))])
        counts = counts_of(idx, n)
        for name in needed:
            stat, part = statistics[name], slice(start, start + len(idx))
            draws[name][part] = stat.of_counts(counts) if hasattr(stat, "of_counts") else [stat(i) for i in idx]
    out = {}
    for a, b in pairs:
        boots = draws[a] - draws[b]
        boots = boots[np.isfinite(boots)]
        lo, hi = percentile_interval(boots, ci)
        p = (
            min(1.0, max(1.0 / (boots.size + 1), 2.0 * min(np.mean(boots <= 0.0), np.mean(boots >= 0.0))))
            if boots.size
            else float("nan")
        )
        out[(a, b)] = Difference(full[a] - full[b], lo, hi, float(p), n)
    return out

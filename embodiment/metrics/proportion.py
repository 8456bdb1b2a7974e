"""A proportion (e.g. accuracy over questions) with a seeded percentile bootstrap CI."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embodiment.metrics.bootstrap import percentile_interval


@dataclass(frozen=True)
class Proportion:
    """A share of successes with its interval.

    Attributes:
        value: the share (NaN with no items).
        n: items counted.
        ci_low: lower bound of the percentile bootstrap interval (NaN without bootstrap).
        ci_high: upper bound.
    """

    value: float
    n: int
    ci_low: float = float("nan")
    ci_high: float = float("nan")


def proportion(success, *, n_boot: int = 0, ci: float = 0.95, seed: int = 0) -> Proportion:
    """The share of true values, with a bootstrap CI resampling the items.

    The same resampling as every other CI of the project (percentile bootstrap, seeded),
    so accuracy's interval reads like the correlations' and RSA's.

    Args:
        success: one boolean (or 0/1) per item, e.g. whether each question was answered right.
        n_boot: bootstrap resamples (0: no CI).
        ci: confidence level.
        seed: seed of the resampling.
    """
    x = np.asarray(success, dtype=np.float64).ravel()
    n = len(x)
    if n == 0:
        return Proportion(float("nan"), 0)
    value = float(x.mean())
    if not n_boot:
        return Proportion(value, n)
    # the count of successes in a resample of n items is binomial(n, value): drawing it is
    # the bootstrap of the mean, exactly, without n_boot x n indices
    boots = np.random.default_rng(seed).binomial(n, value, size=n_boot) / n
    return Proportion(value, n, *percentile_interval(boots, ci))

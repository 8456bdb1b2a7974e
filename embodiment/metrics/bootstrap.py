"""The percentile interval every bootstrap CI of the project ends with."""

from __future__ import annotations

import numpy as np


def percentile_interval(boots, ci: float = 0.95) -> tuple[float, float]:
    """The ``ci`` percentile interval of bootstrap values; undefined resamples (NaN, e.g.
    a constant side) are left out; (NaN, NaN) when none is defined."""
    boots = np.asarray(boots, dtype=np.float64)
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return float(lo), float(hi)

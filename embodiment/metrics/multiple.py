"""Multiple comparisons: Holm's step-down adjustment of a family of p-values.

Per-dimension Steiger tests of one trial are a family (6-11 tests of one question, "did
this trial move agreement?"); a raw p < .05 among eleven is expected by chance about
half the time. Holm (1979) controls the family-wise error rate with no assumption about
the tests' dependence, and is never less powerful than Bonferroni.
"""

from __future__ import annotations

import numpy as np


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values, in the input's order; NaN stays NaN and is not counted.

    The i-th smallest of m p-values is multiplied by m - i + 1 (i from 1), then made
    non-decreasing in that order and capped at 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out

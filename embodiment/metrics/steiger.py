"""Steiger's (1980) z test for two dependent correlations with one variable in common.

The study compared, per dimension, r(model A, human) with r(model B, human) on the same
concepts using R's ``cocor.dep.groups.overlap(test="steiger1980")``; this is the same
statistic: Fisher-z difference over the pooled-r asymptotic covariance (Steiger, 1980,
eq. 14, with r_bar = (r_jk + r_jh) / 2 as cocor substitutes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SteigerTest:
    """z and two-sided p of H0: r_jk = r_jh."""

    z: float
    p: float


def steiger_z(r_jk: float, r_jh: float, r_kh: float, n: int) -> SteigerTest:
    """Compare r(j, k) with r(j, h) measured on the same n cases.

    In this tool j is the human rating, k and h two models (e.g. fine-tuned and base),
    and r_kh the correlation between the two models' ratings.

    Args:
        r_jk: correlation of the shared variable j with k.
        r_jh: correlation of j with h.
        r_kh: correlation of k with h.
        n: number of cases (concepts) all three correlations were computed on.

    Returns:
        :class:`SteigerTest`; NaN where a correlation is undefined or n <= 3.
    """
    if n <= 3 or not all(np.isfinite([r_jk, r_jh, r_kh])):
        return SteigerTest(float("nan"), float("nan"))
    # atanh(+-1) is infinite; keep the statistic finite for identical vectors.
    eps = 1e-12
    r_jk, r_jh, r_kh = (float(np.clip(r, -1 + eps, 1 - eps)) for r in (r_jk, r_jh, r_kh))
    r_m = (r_jk + r_jh) / 2.0
    psi = r_kh * (1 - 2 * r_m**2) - 0.5 * r_m**2 * (1 - 2 * r_m**2 - r_kh**2)
    c = psi / (1 - r_m**2) ** 2
    z = (np.arctanh(r_jk) - np.arctanh(r_jh)) * np.sqrt(n - 3) / np.sqrt(2 - 2 * c)
    return SteigerTest(float(z), float(2 * stats.norm.sf(abs(z))))

"""Comparing two RDMs: one registry of methods, names as in rsatoolbox.

Every method has a dense form on two condensed vectors; the methods that reduce to sums
over pairs (Spearman, rho-a, Pearson, cosine) also say how to finish from the moments
that :mod:`embodiment.metrics.streaming` accumulates, so they run exactly at any n.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from embodiment.registry import lookup


@dataclass(frozen=True)
class Moments:
    """Sums over N pairs of centred values a, b (ranks for rank methods)."""

    n: int
    saa: float  # sum (a - mean a)^2
    sbb: float  # sum (b - mean b)^2
    sab: float  # sum (a - mean a)(b - mean b)
    mean_a: float = 0.0
    mean_b: float = 0.0


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based average ranks with ties (``scipy.stats.rankdata(x)``), faster than it:
    an unstable (SIMD) argsort suffices, since tied values share one rank whatever their order.
    NaN anywhere gives scipy's answer (all NaN)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n == 0 or np.isnan(x).any():
        return stats.rankdata(x)
    order = np.argsort(x)
    xs = x[order]
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(xs[1:], xs[:-1], out=new_group[1:])
    ranks = np.empty(n)
    if new_group.all():
        ranks[order] = np.arange(1.0, n + 1.0)
        return ranks
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], n)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(new_group) - 1]
    return ranks


def _both_ranks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks of two vectors; large ones on two threads (argsort releases the GIL)."""
    if len(a) < 200_000:
        return average_ranks(a), average_ranks(b)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        rb = pool.submit(average_ranks, b)
        return average_ranks(a), rb.result()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return _pearson(*_both_ranks(a, b))


def _rho_a(a: np.ndarray, b: np.ndarray) -> float:
    """rsatoolbox's rho-a: 1 - 6 sum d^2 / (n^3 - n) on average ranks (no tie correction)."""
    n = len(a)
    ra, rb = _both_ranks(a, b)
    d = ra - rb
    return float(1.0 - 6.0 * (d @ d) / (n**3 - n))


def _tie_pairs(x: np.ndarray) -> float:
    _, counts = np.unique(x, return_counts=True)
    return float((counts * (counts - 1) / 2).sum())


def _tau_a(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a: (concordant - discordant) / (n (n - 1) / 2), from scipy's tau-b."""
    n0 = len(a) * (len(a) - 1) / 2
    tau_b = stats.kendalltau(a, b, variant="b").statistic
    return float(tau_b * np.sqrt((n0 - _tie_pairs(a)) * (n0 - _tie_pairs(b))) / n0)


def _tau_b(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.kendalltau(a, b, variant="b").statistic)


def _moments_corr(m: Moments) -> float:
    denom = np.sqrt(m.saa * m.sbb)
    return float(m.sab / denom) if denom > 0 else float("nan")


def _moments_rho_a(m: Moments) -> float:
    n = float(m.n)
    return float(1.0 - 6.0 * (m.saa + m.sbb - 2.0 * m.sab) / (n**3 - n))


def _moments_cosine(m: Moments) -> float:
    # uncentre: sum ab = sab + n ma mb; sum a^2 = saa + n ma^2
    ab = m.sab + m.n * m.mean_a * m.mean_b
    aa = m.saa + m.n * m.mean_a**2
    bb = m.sbb + m.n * m.mean_b**2
    denom = np.sqrt(aa * bb)
    return float(ab / denom) if denom > 0 else float("nan")


@dataclass(frozen=True)
class Comparison:
    """A way to compare two condensed RDMs.

    Attributes:
        name: method string (rsatoolbox's where one exists).
        dense: (a, b) -> value on two condensed vectors.
        on_ranks: whether streaming should accumulate rank moments (else value moments).
        from_moments: finishes the value from streamed :class:`Moments`; None if the
            method cannot be streamed (needs all pairs at once).
    """

    name: str
    dense: Callable[[np.ndarray, np.ndarray], float]
    on_ranks: bool = False
    from_moments: Callable[[Moments], float] | None = None


COMPARISONS: dict[str, Comparison] = {
    c.name: c
    for c in (
        Comparison("spearman", _spearman, True, _moments_corr),
        Comparison("rho-a", _rho_a, True, _moments_rho_a),
        Comparison("corr", _pearson, False, _moments_corr),
        Comparison("cosine", _cosine, False, _moments_cosine),
        Comparison("tau-a", _tau_a),
        Comparison("tau-b", _tau_b),
    )
}
COMPARE_ALIASES = {"pearson": "corr", "kendall": "tau-b", "rho_a": "rho-a", "tau_a": "tau-a", "tau_b": "tau-b"}


def get_comparison(name: str) -> Comparison:
    """Look up an RDM comparison by name or alias."""
    return lookup(COMPARISONS, name, what="RDM comparison", key="compare", aliases=COMPARE_ALIASES)


def compare(a: np.ndarray, b: np.ndarray, method: str = "spearman") -> float:
    """Compare two condensed RDMs with ``method``; pairs where either is NaN are dropped."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    if not keep.all():
        a, b = a[keep], b[keep]
    if len(a) < 3:
        return float("nan")
    return get_comparison(method).dense(a, b)

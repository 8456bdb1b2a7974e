"""Per-dimension agreement between model and human ratings across concepts.

Spearman and Pearson with n, a seeded percentile bootstrap over concepts, and NaN
handling that drops a concept only where one of the two compared ratings is missing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from embodiment.errors import InputError
from embodiment.metrics.bootstrap import percentile_interval
from embodiment.metrics.resampled import SortedColumn, counts_of, mean_of_columns, resampled_correlations
from embodiment.registry import lookup


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two (b, n) arrays; NaN for a constant row."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / denom
    return np.where(denom > 0, np.clip(r, -1.0, 1.0), np.nan)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair: Pearson of average ranks (ties averaged, as scipy)."""
    return _pearson_rows(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))


#: Correlation methods by name; each maps two (b, n) arrays to b coefficients.
CORRELATIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "spearman": _spearman_rows,
    "pearson": _pearson_rows,
}


@dataclass(frozen=True)
class Correlation:
    """One correlation with its inference.

    Attributes:
        method: ``spearman`` or ``pearson``.
        r: the coefficient (NaN when a side is constant or n < 3).
        n: concepts used.
        n_dropped: concepts dropped because one of the two ratings was missing.
        p: two-sided p-value of r = 0 (scipy's).
        ci_low: lower bound of the bootstrap percentile interval (NaN without bootstrap).
        ci_high: upper bound.
    """

    method: str
    r: float
    n: int
    n_dropped: int
    p: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    #: dimensions whose model ratings were constant, counted as 0 (:func:`mean_correlation`)
    n_constant: int = 0


def correlate(
    model: Sequence[float] | np.ndarray,
    human: Sequence[float] | np.ndarray,
    method: str = "spearman",
    *,
    n_boot: int = 0,
    ci: float = 0.95,
    seed: int = 0,
) -> Correlation:
    """Correlate model and human ratings of one dimension across concepts.

    Args:
        model: model ratings, one per concept (NaN where missing).
        human: human ratings of the same concepts.
        method: a key of :data:`CORRELATIONS`.
        n_boot: bootstrap resamples over concepts for the CI (0: none).
        ci: confidence level of the percentile interval.
        seed: seed of the bootstrap.

    Returns:
        A :class:`Correlation`; r equals ``scipy.stats.spearmanr``/``pearsonr`` on the
        concepts where both ratings exist.
    """
    lookup(CORRELATIONS, method, what="correlation", key="method")
    x = np.asarray(model, dtype=np.float64)
    y = np.asarray(human, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"model and human ratings must be two vectors of equal length, got {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n, dropped = int(keep.sum()), int((~keep).sum())
    if n < 3:
        return Correlation(method, float("nan"), n, dropped, float("nan"))
    r = float(CORRELATIONS[method](x[None], y[None])[0])
    p = _p_value(r, n, method)
    lo = hi = float("nan")
    if n_boot and np.isfinite(r):
        lo, hi = bootstrap_ci(x, y, method, n_boot=n_boot, ci=ci, seed=seed)
    return Correlation(method, r, n, dropped, p, lo, hi)


def _p_value(r: float, n: int, method: str) -> float:
    """Two-sided p of r = 0 by the t distribution with n - 2 df (scipy's spearmanr rule;
    for Pearson scipy uses the exact beta distribution, which is the same test)."""
    if not np.isfinite(r):
        return float("nan")
    if abs(r) >= 1.0:
        return 0.0
    t = r * np.sqrt((n - 2) / ((1.0 - r) * (1.0 + r)))
    return float(2 * stats.t.sf(abs(t), n - 2))


def bootstrap_ci(
    x: np.ndarray,
    y: np.ndarray,
    method: str = "spearman",
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    block: int = 128,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a correlation, resampling concepts with replacement.

    Resamples are drawn in blocks of ``block`` rows so that memory stays at block x n.
    Resamples whose coefficient is undefined (a constant side) are left out.
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    sorted_x, sorted_y = SortedColumn(x), SortedColumn(y)
    values = []
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        counts = counts_of(rng.integers(0, n, size=(b, n)), n)
        values.append(resampled_correlations(method, sorted_x, sorted_y, counts))
    return percentile_interval(np.concatenate(values), ci)


def per_dimension(
    model: np.ndarray,
    human: np.ndarray,
    dimensions: Sequence[str],
    *,
    methods: Sequence[str] = ("spearman", "pearson"),
    n_boot: int = 0,
    seed: int = 0,
) -> list[dict]:
    """Correlate each column of ``model`` (n, d) with the same column of ``human``.

    Returns:
        One dict per (dimension, method): dimension, method, value, p, n, n_dropped, ci_low, ci_high.
    """
    rows = []
    for j, dim in enumerate(dimensions):
        for method in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                c = correlate(model[:, j], human[:, j], method, n_boot=n_boot, seed=seed + j)
            rows.append(
                {
                    "dimension": dim,
                    "method": method,
                    "value": c.r,
                    "p": c.p,
                    "n": c.n,
                    "n_dropped": c.n_dropped,
                    "ci_low": c.ci_low,
                    "ci_high": c.ci_high,
                }
            )
    return rows


def mean_correlation(
    model: np.ndarray,
    human: np.ndarray,
    method: str = "spearman",
    *,
    n_boot: int = 0,
    ci: float = 0.95,
    seed: int = 0,
    block: int = 128,
) -> Correlation:
    """The mean over dimensions of the per-dimension correlation, with a bootstrap CI.

    One number for "how well does the model rank concepts, dimension by dimension": the
    mean of :func:`per_dimension`'s coefficients. The CI resamples concepts (rows) with
    replacement, the same resample for every dimension, so it carries the dimensions'
    dependence; concepts missing any rating are left out of value and CI alike (under the
    paired-word rule they are missing in every compared condition).

    Args:
        model: (n, d) model ratings (NaN where missing).
        human: (n, d) human ratings of the same concepts and dimensions.
        method: a key of :data:`CORRELATIONS`.
        n_boot: bootstrap resamples over concepts (0: no CI).
        ci: confidence level of the percentile interval.
        seed: seed of the bootstrap.
        block: resamples drawn at once (memory: block x n).

    A dimension whose model ratings are constant (a model that collapsed to one rating)
    has no coefficient: it counts as 0 in the mean (in the CI's resamples too) and in
    ``n_constant``, never silently left out (leaving it out would reward collapsing).

    Returns:
        A :class:`Correlation` whose ``r`` is the mean coefficient and ``p`` is NaN (a mean
        of correlations has no closed-form test; read the CI).
    """
    x = np.asarray(model, dtype=np.float64)
    y = np.asarray(human, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise InputError(
            f"model and human ratings must be two (concepts, dimensions) tables of equal shape, got "
            f"{x.shape} and {y.shape}"
        )
    keep = ~(np.isnan(x) | np.isnan(y)).any(axis=1)
    x, y = x[keep], y[keep]
    n, dropped = int(keep.sum()), int((~keep).sum())
    if n < 3:
        return Correlation(method, float("nan"), n, dropped, float("nan"))
    rows = CORRELATIONS[method]
    per_dim = rows(x.T, y.T)
    constant = (x == x[:1]).all(axis=0) & ~(y == y[:1]).all(axis=0)
    r = float(np.mean(np.where(constant, 0.0, per_dim))) if not np.isnan(per_dim[~constant]).any() else float("nan")
    lo = hi = float("nan")
    if n_boot and np.isfinite(r):
        lo, hi = percentile_interval(_resampled_means(x, y, method, n_boot, seed, block), ci)
    return Correlation(method, r, n, dropped, float("nan"), lo, hi, n_constant=int(constant.sum()))


def _resampled_means(x: np.ndarray, y: np.ndarray, method: str, n_boot: int, seed: int, block: int) -> np.ndarray:
    """The mean coefficient over dimensions of each of ``n_boot`` resamples of rows (the same
    resample for every dimension); a model column constant in a resample counts 0 there, as
    in the value; NaN where a human column is constant in it."""
    n = len(x)
    columns = [(SortedColumn(x[:, j]), SortedColumn(y[:, j])) for j in range(x.shape[1])]
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, n_boot, block):
        counts = counts_of(rng.integers(0, n, size=(min(block, n_boot - start), n)), n)
        values.append(mean_of_columns(method, columns, counts))
    return np.concatenate(values)

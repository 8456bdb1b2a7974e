"""Representational dissimilarity matrices: feature standardisation and distance methods.

Each distance method is split into ``prepare`` (per-row work done once, e.g. unit
normalisation) and ``block`` (distances between two row blocks), so the same code fills
a dense condensed RDM and streams the 788M pairs of the whole Lancaster vocabulary in
blocks. Method names follow scipy / rsatoolbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from embodiment.registry import lookup

# ----------------------------------------------------------------------- standardisation


def _zscore(x: np.ndarray) -> np.ndarray:
    """z-score each column across rows (ddof=1); a constant column becomes all zeros
    (it carries no information, and dividing by its zero SD would poison every row)."""
    if len(x) == 0:  # nothing to standardise (and no numpy warning about an empty mean)
        return np.asarray(x, dtype=float)
    mean = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])
    safe = np.where(sd > 0, sd, 1.0)
    return np.where(sd > 0, (x - mean) / safe, 0.0)


STANDARDISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "zscore": _zscore,
}

# ----------------------------------------------------------------------- distance methods


@dataclass(frozen=True)
class RDMMethod:
    """A distance between concepts' feature vectors.

    Attributes:
        name: the method string (scipy / rsatoolbox spelling).
        prepare: rows -> (prepared rows, mask of rows whose distances are defined).
        block: (prepared rows a, prepared rows b) -> (len(a), len(b)) distances.
        width: features -> floats a block holds per pair (d where differences are explicit).
    """

    name: str
    prepare: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    block: Callable[[np.ndarray, np.ndarray], np.ndarray]
    width: Callable[[int], int] = lambda d: 1
    #: Optional ``block`` that writes into a given (len(a), len(b)) array: streaming
    #: reuses one buffer instead of faulting in fresh pages for every 128 MiB block.
    block_into: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norm = np.sqrt((x * x).sum(axis=1))
    ok = norm > 0
    return x / np.where(ok, norm, 1.0)[:, None], ok


def _centred_unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _unit_rows(x - x.mean(axis=1, keepdims=True))


def _one_minus_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 - a @ b.T


def _one_minus_dot_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    np.matmul(a, b.T, out=out)
    np.subtract(1.0, out, out=out)


_EXPLICIT_MAX_FEATURES = 32


def _explicit_width(d: int) -> int:
    return d if d <= _EXPLICIT_MAX_FEATURES else 1


def _sq_euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape[1] <= _EXPLICIT_MAX_FEATURES:  # few features (ratings): explicit differences, exact like scipy
        diff = a[:, None, :] - b[None, :, :]
        return np.einsum("ijk,ijk->ij", diff, diff)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(sq, 0.0)


def _all_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x, np.ones(len(x), dtype=bool)


def _cityblock(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a[:, None, :] - b[None, :, :]).sum(axis=2)


RDM_METHODS: dict[str, RDMMethod] = {
    m.name: m
    for m in (
        RDMMethod("cosine", _unit_rows, _one_minus_dot, block_into=_one_minus_dot_into),
        RDMMethod("correlation", _centred_unit_rows, _one_minus_dot, block_into=_one_minus_dot_into),
        RDMMethod("euclidean", _all_rows, lambda a, b: np.sqrt(_sq_euclidean(a, b)), _explicit_width),
        RDMMethod("sqeuclidean", _all_rows, _sq_euclidean, _explicit_width),
        RDMMethod("cityblock", _all_rows, _cityblock, lambda d: d),
    )
}
RDM_ALIASES = {"corr": "correlation", "euclid": "euclidean", "manhattan": "cityblock"}


def get_rdm_method(name: str) -> RDMMethod:
    """Look up a distance method by name or alias."""
    return lookup(RDM_METHODS, name, what="RDM method", key="rdm", aliases=RDM_ALIASES)


def get_standardiser(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """Look up a feature standardisation by name."""
    return lookup(STANDARDISERS, name, what="standardisation", key="standardise")


# ----------------------------------------------------------------------- condensed RDMs


def n_pairs(n: int) -> int:
    """Number of concept pairs in a condensed RDM of n concepts."""
    return n * (n - 1) // 2


def _rows_per_block(n: int, width: int, budget: int = 2**24) -> int:
    """Rows per block so that a block holds about ``budget`` float64 (128 MiB)."""
    return int(max(1, min(n, budget // max(1, n * width))))


def iter_condensed(prepared: np.ndarray, method: RDMMethod, *, budget: int = 2**24) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (offset, distances) blocks that together form the condensed RDM, in
    scipy's ``pdist`` order (row-major upper triangle), without building the n x n matrix.

    The distances of a block are a view into a buffer the next block overwrites: use or
    copy them before asking for the next one.
    """
    n = len(prepared)
    rows = _rows_per_block(n, method.width(prepared.shape[1]), budget)
    scratch = np.empty(rows * n) if method.block_into is not None else None
    flat = np.empty(rows * n)
    offset = 0
    for i0 in range(0, n - 1, rows):
        i1 = min(n - 1, i0 + rows)
        r, c = i1 - i0, n - i0
        if scratch is not None:
            block = scratch[: r * c].reshape(r, c)
            method.block_into(prepared[i0:i1], prepared[i0:], block)
        else:
            block = method.block(prepared[i0:i1], prepared[i0:])
        # Row k of the block holds pairs (i0 + k, j) for j >= i0; its upper part starts
        # at column k + 1. Row slices copy faster than a boolean mask over the block.
        size = 0
        for k in range(r):
            flat[size : size + c - k - 1] = block[k, k + 1 :]
            size += c - k - 1
        yield offset, flat[:size]
        offset += size


def condensed_rdm(features: np.ndarray, method: str = "cosine", standardise: str = "none") -> np.ndarray:
    """The condensed RDM (scipy ``pdist`` order) of ``features`` (n, d), float64.

    Rows whose distance is undefined (a zero vector under cosine) give NaN distances.
    """
    m = get_rdm_method(method)
    x = get_standardiser(standardise)(np.asarray(features, dtype=np.float64))
    prepared, ok = m.prepare(x)
    out = np.empty(n_pairs(len(x)))
    for offset, values in iter_condensed(prepared, m):
        out[offset : offset + values.size] = values
    if not ok.all():
        sq = np.zeros((len(x), len(x)), dtype=bool)
        sq[~ok, :] = True
        sq[:, ~ok] = True
        out[sq[np.triu_indices(len(x), 1)]] = np.nan
    return out

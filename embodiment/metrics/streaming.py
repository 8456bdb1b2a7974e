"""Exact RDM comparison at any n, without an n x n matrix: moments streamed over blocks.

Spearman on the whole Lancaster vocabulary (39,707 concepts, 788M pairs) needs the rank
of every distance. We never hold a float64 RDM: each distance is quantised to a
fixed-point integer (monotone, 2^(64 - index bits) levels between the RDM's min and max,
about 1e-10 resolution at full scale) and packed with its pair index into one uint64.
Sorting those keys in place orders the pairs; walking the sorted keys gives average
ranks with ties. RDM a's doubled ranks are kept as uint32 (4 bytes a pair); RDM b's keys
are then sorted and walked, and the rank moments accumulate in float64.
Peak memory: 12 bytes a pair (8 for keys, 4 for a's ranks), about 9.5 GB at n = 39,707.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from embodiment.metrics.compare import Moments
from embodiment.metrics.rdm import RDMMethod, iter_condensed, n_pairs

_CHUNK = 1 << 23  # keys walked per step (64 MiB)


def _blocks(prepared: np.ndarray, method: RDMMethod):
    return iter_condensed(prepared, method)


def value_moments(pa: np.ndarray, ma: RDMMethod, pb: np.ndarray, mb: RDMMethod) -> Moments:
    """Centred moments of the raw distances of two RDMs (for Pearson and cosine).

    Blocks are merged with Chan's parallel formulas, so the sums stay accurate in float64.
    """
    n = 0
    mean_a = mean_b = saa = sbb = sab = 0.0
    for (_, a), (_, b) in zip(_blocks(pa, ma), _blocks(pb, mb)):
        k = a.size
        if k == 0:
            continue
        ba, bb = a.mean(), b.mean()
        ac, bc = a - ba, b - bb
        qa, qb, qab = ac @ ac, bc @ bc, ac @ bc
        tot = n + k
        da, db = ba - mean_a, bb - mean_b
        saa += qa + da * da * n * k / tot
        sbb += qb + db * db * n * k / tot
        sab += qab + da * db * n * k / tot
        mean_a += da * k / tot
        mean_b += db * k / tot
        n = tot
    return Moments(n, saa, sbb, sab, mean_a, mean_b)


def _sorted_keys(prepared: np.ndarray, method: RDMMethod, index_bits: int, progress: Callable[[str], None] | None) -> np.ndarray:
    """Quantised distances packed above their pair index, sorted ascending."""
    total = n_pairs(len(prepared))
    lo, hi = np.inf, -np.inf
    for _, values in _blocks(prepared, method):  # pass 1: range for the quantiser
        lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    # <= 52 value bits: exact in float64, and the packed key can never overflow 64 bits
    levels = float((1 << min(52, 64 - index_bits)) - 1)
    scale = levels / (hi - lo) if hi > lo else 0.0
    keys = np.empty(total, dtype=np.uint64)
    shift = np.uint64(index_bits)
    for offset, values in _blocks(prepared, method):  # pass 2: pack
        q = np.floor((values - lo) * scale).astype(np.uint64)
        np.minimum(q, np.uint64(levels), out=q)
        keys[offset: offset + values.size] = (q << shift) | np.arange(offset, offset + values.size, dtype=np.uint64)
    if progress:
        progress(f"sorting {total:,} pair keys")
    keys.sort()
    return keys


def _walk_ranks(keys: np.ndarray, index_bits: int):
    """Yield (pair indices, doubled average ranks) over the sorted keys, chunk by chunk.

    Chunks end on a tie-group boundary, so each group's average rank is seen whole.
    """
    total = keys.size
    mask = np.uint64((1 << index_bits) - 1)
    shift = np.uint64(index_bits)
    c0 = 0
    while c0 < total:
        c1 = min(total, c0 + _CHUNK)
        if c1 < total:
            last = keys[c1 - 1] >> shift
            c1 = int(np.searchsorted(keys, (last + np.uint64(1)) << shift, side="left"))
        vals = keys[c0:c1] >> shift
        starts = np.flatnonzero(vals[1:] != vals[:-1]) + 1
        starts = np.concatenate(([0], starts))
        ends = np.concatenate((starts[1:], [c1 - c0]))
        doubled = np.repeat((2 * c0 + starts + ends + 1).astype(np.uint64), ends - starts)
        yield keys[c0:c1] & mask, doubled
        c0 = c1


#: Above this many bytes the two RDMs are ranked one after the other (12 bytes a pair);
#: below it, side by side on two threads (20 bytes a pair).
PARALLEL_MEMORY = 4 * 2**30
PARALLEL_BYTES_PER_PAIR = 20


def rank_moments(pa: np.ndarray, ma: RDMMethod, pb: np.ndarray, mb: RDMMethod,
                 progress: Callable[[str], None] | None = None) -> Moments:
    """Centred moments of the average ranks of two RDMs' distances (Spearman, rho-a)."""
    total = n_pairs(len(pa))
    index_bits = max(1, int(total - 1).bit_length())
    mean = (total + 1) / 2.0
    keys_b = None
    if total * PARALLEL_BYTES_PER_PAIR <= PARALLEL_MEMORY:
        # Both RDMs' keys fit at once: build and sort them on two threads (numpy's sort
        # releases the GIL), 20 bytes a pair instead of 12.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            fb = pool.submit(_sorted_keys, pb, mb, index_bits, None)
            keys = _sorted_keys(pa, ma, index_bits, progress)
            keys_b = fb.result()
    else:
        keys = _sorted_keys(pa, ma, index_bits, progress)
    ranks_a = np.empty(total, dtype=np.uint32)  # doubled average ranks of a, by pair
    saa = 0.0
    for idx, doubled in _walk_ranks(keys, index_bits):
        ranks_a[idx] = doubled
        r = doubled * 0.5 - mean
        saa += float(r @ r)
    del keys
    keys = keys_b if keys_b is not None else _sorted_keys(pb, mb, index_bits, progress)
    del keys_b
    sbb = sab = 0.0
    for idx, doubled in _walk_ranks(keys, index_bits):
        rb = doubled * 0.5 - mean
        ra = ranks_a[idx] * 0.5 - mean
        sbb += float(rb @ rb)
        sab += float(ra @ rb)
    return Moments(total, saa, sbb, sab, mean, mean)

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


def _sorted_keys(
    prepared: np.ndarray, method: RDMMethod, index_bits: int, progress: Callable[[str], None] | None
) -> np.ndarray:
    """Quantised distances packed above their pair index, sorted ascending.

    The distances are computed once, into the key array itself (as float64), which also
    gives the quantiser its range; they are then packed in place, chunk by chunk.
    """
    total = n_pairs(len(prepared))
    keys = np.empty(total, dtype=np.uint64)
    values = keys.view(np.float64)
    lo, hi = np.inf, -np.inf
    for offset, block in _blocks(prepared, method):
        values[offset : offset + block.size] = block
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    # <= 52 value bits: exact in float64, and the packed key can never overflow 64 bits
    levels = float((1 << min(52, 64 - index_bits)) - 1)
    scale = levels / (hi - lo) if hi > lo else 0.0
    shift = np.uint64(index_bits)
    for c0 in range(0, total, _CHUNK):
        c1 = min(total, c0 + _CHUNK)
        q = values[c0:c1] - lo
        q *= scale
        np.floor(q, out=q)
        np.minimum(q, levels, out=q)
        packed = q.astype(np.uint64)
        packed <<= shift
        packed |= np.arange(c0, c1, dtype=np.uint64)
        keys[c0:c1] = packed
    if progress:
        progress(f"sorting {total:,} pair keys")
    keys.sort()
    return keys


def _chunk_bounds(keys: np.ndarray, index_bits: int) -> list[tuple[int, int]]:
    """(start, end) of chunks of about ``_CHUNK`` sorted keys, each ending on a tie-group
    boundary so that every group's average rank is seen whole."""
    total = keys.size
    shift = np.uint64(index_bits)
    top = (1 << (64 - index_bits)) - 1  # the largest value a key can carry
    bounds, c0 = [], 0
    while c0 < total:
        c1 = min(total, c0 + _CHUNK)
        if c1 < total:
            last = int(keys[c1 - 1] >> shift)
            # the next group starts at the first key above `last`; none is above the top
            c1 = total if last >= top else int(np.searchsorted(keys, np.uint64(last + 1) << shift, side="left"))
        bounds.append((c0, c1))
        c0 = c1
    return bounds


def _chunk_ranks(keys: np.ndarray, c0: int, c1: int, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair indices and doubled average ranks (1-based) of sorted keys ``c0:c1``."""
    vals = keys[c0:c1] >> np.uint64(index_bits)
    new_group = vals[1:] != vals[:-1]
    if new_group.all():  # no ties (the rule for continuous distances): rank = position
        doubled = np.arange(2 * c0 + 2, 2 * c1 + 2, 2, dtype=np.uint64)
    else:
        starts = np.concatenate(([0], np.flatnonzero(new_group) + 1))
        ends = np.concatenate((starts[1:], [c1 - c0]))
        doubled = np.repeat((2 * c0 + starts + ends + 1).astype(np.uint64), ends - starts)
    return keys[c0:c1] & np.uint64((1 << index_bits) - 1), doubled


def _map_chunks(task, bounds: list[tuple[int, int]]) -> list:
    """``task`` over the chunks on up to two threads (numpy releases the GIL in the
    scatter, gather and dot products), results in chunk order so sums are reproducible."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    threads = max(1, min(2, os.cpu_count() or 1, len(bounds)))
    if threads == 1:
        return [task(b) for b in bounds]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(task, bounds))


#: Above this many bytes the two RDMs are ranked one after the other (12 bytes a pair);
#: below it, side by side on two threads (20 bytes a pair).
PARALLEL_MEMORY = 4 * 2**30
PARALLEL_BYTES_PER_PAIR = 20


def rank_moments(
    pa: np.ndarray, ma: RDMMethod, pb: np.ndarray, mb: RDMMethod, progress: Callable[[str], None] | None = None
) -> Moments:
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

    def rank_a(bounds: tuple[int, int]) -> float:
        idx, doubled = _chunk_ranks(keys, *bounds, index_bits)
        ranks_a[idx] = doubled
        r = doubled * 0.5 - mean
        return float(r @ r)

    saa = sum(_map_chunks(rank_a, _chunk_bounds(keys, index_bits)))
    del keys
    keys = keys_b if keys_b is not None else _sorted_keys(pb, mb, index_bits, progress)
    del keys_b

    def rank_b(bounds: tuple[int, int]) -> tuple[float, float]:
        idx, doubled = _chunk_ranks(keys, *bounds, index_bits)
        rb = doubled * 0.5 - mean
        ra = ranks_a[idx] * 0.5 - mean
        return float(rb @ rb), float(ra @ rb)

    parts = _map_chunks(rank_b, _chunk_bounds(keys, index_bits))
    sbb, sab = sum(p[0] for p in parts), sum(p[1] for p in parts)
    return Moments(total, saa, sbb, sab, mean, mean)

"""RSA over bootstrap resamples of concepts, without rebuilding or re-ranking the RDMs.

A resample of concepts drawn with replacement holds concept i ``c_i`` times. Its pairs
of distinct concepts are the original pairs, pair (i, j) repeated ``c_i * c_j`` times
(pairs of a concept with its own copy are left out: their zero distance is an artefact
of resampling). So every resample is the two fixed condensed RDMs with integer weights,
and a comparison of the two becomes a weighted statistic of vectors computed once:

* Spearman: a value's average rank in the weighted multiset is the weight of all smaller
  values plus half (its tie group's weight + 1), so one sorted order per RDM, computed
  once, serves every resample: a gather, a prefix sum (a tie group's average rank from
  the prefix sums at group ends) and a weighted Pearson, O(pairs) a draw instead of two
  O(pairs log pairs) sorts.
* Pearson (``corr``) and cosine: weighted sums.
* other comparisons: the multiset written out, then the method itself (exact, slower).

The RDMs are built once over all concepts, with the features standardised over all of
them (as rsatoolbox bootstraps RDMs): a resample reweights concept pairs, it does not
re-standardise. Tests compare every path with the written-out multiset and scipy.
"""

from __future__ import annotations

import numpy as np

from embodiment.metrics.compare import Comparison, get_comparison


def _prefix_sums(w: np.ndarray) -> np.ndarray:
    """Inclusive prefix sums of ``w`` in float64. torch's scan, on the same memory: numpy's
    cumsum adds one element at a time (docs/performance.md). The weights are integers, so
    every order of addition gives the same sums."""
    import torch

    return torch.cumsum(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float64)), 0).numpy()


class _RankedSide:
    """One RDM's sorted order and tie groups, for weighted average ranks."""

    def __init__(self, values: np.ndarray, rows: np.ndarray, cols: np.ndarray):
        self.order = np.argsort(values, kind="stable")
        ordered = values[self.order]
        self.rows, self.cols = np.take(rows, self.order), np.take(cols, self.order)
        new_group = np.empty(ordered.size, dtype=bool)
        new_group[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
        self.ties = not new_group.all()
        self.group = self.group_end = None
        if self.ties:
            self.group = np.cumsum(new_group) - 1
            # the last position of each tie group: its prefix sum is the weight up to the group's end
            self.group_end = np.flatnonzero(np.append(new_group[1:], True))

    def centred_ranks(self, counts: np.ndarray, mean: float) -> tuple[np.ndarray, np.ndarray]:
        """(weights, weighted average ranks minus ``mean``), both in this side's sorted order."""
        w = np.take(counts, self.rows)  # np.take, not fancy indexing: docs/performance.md
        w *= np.take(counts, self.cols)
        ranks = _prefix_sums(w)
        if not self.ties:
            ranks -= 0.5 * w
        else:
            # a tie group's average rank: halfway between the weight before it and the weight up to its end
            ends = np.take(ranks, self.group_end)
            middle = ends.copy()
            middle[1:] += ends[:-1]
            middle *= 0.5
            ranks = np.take(middle, self.group)
        ranks += 0.5 - mean
        return w, ranks


def _weighted_pearson(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    total = w.sum()
    a = a - (w @ a) / total
    b = b - (w @ b) / total
    wa = w * a
    denom = np.sqrt((wa @ a) * ((w * b) @ b))
    return float((wa @ b) / denom) if denom > 0 else float("nan")


class ResampledRSA:
    """RSA of two fixed condensed RDMs over resamples of their concepts.

    Args:
        a: the model's condensed RDM (scipy ``pdist`` order) over n concepts.
        b: the humans' condensed RDM over the same concepts.
        n: the number of concepts.
        comparison: how the RDMs are compared (a name or a
            :class:`~embodiment.metrics.compare.Comparison`).

    Calling it with ``idx`` (row indices drawn with replacement) gives the RSA of that
    resample; ``idx`` = every concept once gives the RSA of all concepts. :meth:`of`
    builds one from features, as :func:`embodiment.metrics.rsa` builds its RDMs.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, n: int, comparison: str | Comparison):
        self.n = int(n)
        self.comparison = get_comparison(comparison) if isinstance(comparison, str) else comparison
        self.a = np.asarray(a, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)
        rows, cols = np.triu_indices(self.n, 1)
        small = np.int16 if self.n < 2**15 else np.int32  # narrower indices: less memory traffic a draw
        self.rows, self.cols = rows.astype(small), cols.astype(small)
        self._ranked = None
        if self.comparison.name == "spearman":
            side_a = _RankedSide(self.a, self.rows, self.cols)
            side_b = _RankedSide(self.b, self.rows, self.cols)
            where_in_b = np.empty(self.a.size, dtype=np.int64)
            where_in_b[side_b.order] = np.arange(self.a.size)
            # position in b's sorted order of each pair of a's sorted order
            self._ranked = (side_a, side_b, where_in_b[side_a.order])

    @classmethod
    def of(cls, model: np.ndarray, human: np.ndarray, recipe) -> "ResampledRSA":
        """From (n, d) features of complete rows with defined distances (what
        :func:`embodiment.metrics.rsa` keeps): the recipe's RDMs of each, built once."""
        from embodiment.metrics.rsa import _condensed, _prepare, get_recipe

        recipe = get_recipe(recipe)
        ma, pa, _ = _prepare(np.asarray(model, dtype=np.float64), recipe)
        mb, pb, _ = _prepare(np.asarray(human, dtype=np.float64), recipe)
        return cls(_condensed(pa, ma), _condensed(pb, mb), len(model), recipe.compare)

    def __call__(self, idx: np.ndarray) -> float:
        return self.from_counts(np.bincount(np.asarray(idx), minlength=self.n))

    def from_counts(self, counts: np.ndarray) -> float:
        """RSA of the resample that holds concept i ``counts[i]`` times."""
        # weights c_i * c_j, ranks and sums in float64 (integers and half-integers: exact)
        counts = np.asarray(counts, dtype=np.float64)
        name = self.comparison.name
        if self._ranked is not None:
            side_a, side_b, b_of_a = self._ranked
            # every pair's weighted average rank has mean (W + 1) / 2, W the total weight
            mean = ((counts.sum() ** 2 - counts @ counts) / 2.0 + 1.0) / 2.0
            w_a, rank_a = side_a.centred_ranks(counts, mean)
            w_b, rank_b = side_b.centred_ranks(counts, mean)
            weighted_a = w_a * rank_a
            var_a = weighted_a @ rank_a
            var_b = (w_b * rank_b) @ rank_b
            denom = np.sqrt(var_a * var_b)
            return float((weighted_a @ np.take(rank_b, b_of_a)) / denom) if denom > 0 else float("nan")
        w = np.take(counts, self.rows) * np.take(counts, self.cols)
        if name == "corr":
            return _weighted_pearson(w, self.a, self.b)
        if name == "cosine":
            wa = w * self.a
            denom = np.sqrt((wa @ self.a) * ((w * self.b) @ self.b))
            return float((wa @ self.b) / denom) if denom > 0 else float("nan")
        repeat = w.astype(np.int64)
        return self.comparison.dense(np.repeat(self.a, repeat), np.repeat(self.b, repeat))

    def draws(self, n_boot: int, rng: np.random.Generator) -> np.ndarray:
        """``n_boot`` bootstrap values (concepts resampled with replacement). One thread: a
        draw is memory-bound, and two threads on two cores ran slower than one
        (docs/performance.md)."""
        return np.array([self(rng.integers(0, self.n, size=self.n)) for _ in range(n_boot)])

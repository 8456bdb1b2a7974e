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

import threading

import numpy as np

from embodiment.metrics.compare import Comparison, get_comparison

#: the most bootstrap draws run at once (one thread each)
MAX_THREADS = 8


class _Workspace:
    """Per-thread buffers of one pair count, reused by every draw of every RSA of that size
    on that thread (draws on several threads each need their own)."""

    _local = threading.local()

    @classmethod
    def of(cls, pairs: int) -> dict[str, np.ndarray]:
        spaces = cls._local.__dict__.setdefault("spaces", {})
        if pairs not in spaces:
            spaces.clear()  # one size at a time: RSAs of one aggregate share their concepts
            spaces[pairs] = {name: np.empty(pairs) for name in ("w_a", "rank_a", "w_b", "rank_b", "scratch", "cross")}
        return spaces[pairs]


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """Dot product in float64, by torch on the arrays' own memory."""
    import torch

    return float(torch.dot(torch.from_numpy(x), torch.from_numpy(y)))


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
            self.group = (np.cumsum(new_group) - 1).astype(np.int32)
            # the last position of each tie group: its prefix sum is the weight up to the group's end
            self.group_end = np.flatnonzero(np.append(new_group[1:], True))

    def shifted_ranks(self, counts: np.ndarray, w: np.ndarray, ranks: np.ndarray, scratch: np.ndarray) -> None:
        """Write the pairs' weights and their weighted average ranks minus 1/2, both in this
        side's sorted order, into ``w`` and ``ranks`` (``scratch``: a buffer of their size)."""
        import torch

        # mode="clip": numpy buffers the output of a take with out= in its default mode
        np.take(counts, self.rows, out=w, mode="clip")
        np.take(counts, self.cols, out=scratch, mode="clip")
        np.multiply(w, scratch, out=w)
        torch_w, torch_ranks = torch.from_numpy(w), torch.from_numpy(ranks)
        # torch's scan: numpy's cumsum adds one element at a time (docs/performance.md); the
        # weights are integers, so every order of addition gives the same sums
        torch.cumsum(torch_w, 0, out=torch_ranks)
        if not self.ties:
            torch_ranks.sub_(torch_w, alpha=0.5)
            return
        # a tie group's average rank: halfway between the weight before it and the weight up to its end
        ends = np.take(ranks, self.group_end)
        middle = ends.copy()
        middle[1:] += ends[:-1]
        middle *= 0.5
        np.take(middle, self.group, out=ranks, mode="clip")


def _weighted_pearson(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    total = w.sum()
    a = a - (w @ a) / total
    b = b - (w @ b) / total
    wa = w * a
    denom = np.sqrt((wa @ a) * ((w * b) @ b))
    return float((wa @ b) / denom) if denom > 0 else float("nan")


def human_draw(side_b: _RankedSide, counts: np.ndarray, space: dict) -> tuple[float, float]:
    """One draw's human side of a Spearman RSA: its weights and shifted ranks written into
    ``space`` (``w_b``, ``rank_b``); returns the total weight and the ranks' weighted
    variance. Every model compared with the same human RDM on the same draw reuses it
    (:mod:`embodiment.metrics.rsa_shared`).

    Weighted Pearson of the two sides' weighted average ranks: shifted ranks r' = r - 1/2
    average W / 2 over the total weight W; the sums are taken uncentred (no pass to centre)
    and centred in closing: both variances are about W^3 / 12 against sums of about W^3 / 3,
    so nothing cancels.
    """
    w_b, rank_b, scratch = space["w_b"], space["rank_b"], space["scratch"]
    total = (counts.sum() ** 2 - counts @ counts) / 2.0
    side_b.shifted_ranks(counts, w_b, rank_b, scratch)
    np.multiply(w_b, rank_b, out=scratch)
    return total, _dot(scratch, rank_b) - total * (total / 2.0) ** 2


def model_draw(side_a: _RankedSide, b_of_a: np.ndarray, counts: np.ndarray, human: tuple, space: dict) -> float:
    """The Spearman RSA of one draw, given its human side (:func:`human_draw`, in ``space``)."""
    total, var_b = human
    shift = total * (total / 2.0) ** 2  # W * mean^2, the mean of r' being W / 2
    w_a, rank_a, scratch, cross = space["w_a"], space["rank_a"], space["scratch"], space["cross"]
    side_a.shifted_ranks(counts, w_a, rank_a, scratch)
    np.take(space["rank_b"], b_of_a, out=cross, mode="clip")  # b's ranks in a's order of pairs
    np.multiply(w_a, rank_a, out=scratch)
    var_a = _dot(scratch, rank_a) - shift
    covariance = _dot(scratch, cross) - shift
    denom = np.sqrt(var_a * var_b)
    return float(covariance / denom) if denom > 0 else float("nan")


def positions_in(side_b: _RankedSide, side_a: _RankedSide) -> np.ndarray:
    """Position in b's sorted order of each pair of a's sorted order."""
    where_in_b = np.empty(side_b.order.size, dtype=np.int64)
    where_in_b[side_b.order] = np.arange(side_b.order.size)
    return where_in_b[side_a.order].astype(np.int32)


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
            self._ranked = (side_a, side_b, positions_in(side_b, side_a))

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
            return self._spearman(counts)
        w = np.take(counts, self.rows) * np.take(counts, self.cols)
        if name == "corr":
            return _weighted_pearson(w, self.a, self.b)
        if name == "cosine":
            wa = w * self.a
            denom = np.sqrt((wa @ self.a) * ((w * self.b) @ self.b))
            return float((wa @ self.b) / denom) if denom > 0 else float("nan")
        repeat = w.astype(np.int64)
        return self.comparison.dense(np.repeat(self.a, repeat), np.repeat(self.b, repeat))

    def _spearman(self, counts: np.ndarray) -> float:
        side_a, side_b, b_of_a = self._ranked
        space = _Workspace.of(self.a.size)
        human = human_draw(side_b, counts, space)
        return model_draw(side_a, b_of_a, counts, human, space)

    def draws(self, n_boot: int, rng: np.random.Generator, threads: int | None = None) -> np.ndarray:
        """``n_boot`` bootstrap values (concepts resampled with replacement).

        The resamples are drawn in order from ``rng`` first, so the values do not depend on
        ``threads``: how many draws run at once (default: one per core, up to
        :data:`MAX_THREADS`), each on its own buffers. Inside a draw every step runs on one
        thread: its steps are too short for a second one to pay (docs/performance.md).
        """
        counts = [np.bincount(rng.integers(0, self.n, size=self.n), minlength=self.n) for _ in range(n_boot)]
        return self.of_counts(counts, threads)

    def of_counts(self, counts, threads: int | None = None) -> np.ndarray:
        """The RSA of each resample given as its concepts' counts (rows of ``counts``),
        several at once (``threads``: as in :meth:`draws`)."""
        threads = max(1, min(threads or _cores(), MAX_THREADS, len(counts)))
        out = np.empty(len(counts))
        parts = in_parts(lambda part: [self.from_counts(c) for c in counts[part::threads]], threads)
        for part, values in enumerate(parts):
            out[part::threads] = values
        return out


def in_parts(run, threads: int) -> list:
    """``run(part)`` for each part in ``range(threads)``, each on its own thread (one torch
    thread each); their results in part order."""
    with _one_torch_thread():
        if threads == 1:
            return [run(0)]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(run, range(threads)))


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _one_torch_thread:
    """torch's intra-op threads set to one while draws run, restored after."""

    def __enter__(self):
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.before)

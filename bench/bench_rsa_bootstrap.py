"""RSA bootstrap draws at the replication's size: milliseconds a draw, three ways, in one run.

* ``rebuilt``: the naive peer: each resample's RDMs taken from the full ones and ranked
  afresh with scipy (``spearmanr`` of the resample's distinct-concept pairs);
* ``reweighted, 1 thread``: ``ResampledRSA.draws(threads=1)``: the fixed RDMs' pairs
  reweighted per draw (``embodiment/metrics/rsa_bootstrap.py``);
* ``reweighted, N threads``: the same draws, N at once (the default: one per core).

Every way gets the same resamples and must give the same values (checked). Ratings-like
inputs: a human side rounded to two decimals (tied distances), a noisy model side.

Usage: python bench/bench_rsa_bootstrap.py [--concepts 1000] [--draws 100] [--rebuilt 5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    from scipy.stats import spearmanr

    from embodiment.metrics import RECIPES
    from embodiment.metrics.rsa_bootstrap import ResampledRSA, _cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concepts", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--rebuilt", type=int, default=5, help="draws of the naive peer (slow)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    n = args.concepts
    human = np.round(rng.uniform(0, 5, size=(n, 11)), 2)
    model = human + rng.normal(scale=1.5, size=human.shape)
    recipe = RECIPES["wu2026"]
    rsa = ResampledRSA.of(model, human, recipe)
    timings = {}
    rsa.draws(2, np.random.default_rng(0))  # imports and buffers, not timed

    started = time.perf_counter()
    one = rsa.draws(args.draws, np.random.default_rng(1), threads=1)
    timings["reweighted, 1 thread"] = (time.perf_counter() - started) / args.draws
    threads = _cores()
    started = time.perf_counter()
    many = rsa.draws(args.draws, np.random.default_rng(1), threads=threads)
    timings[f"reweighted, {threads} threads"] = (time.perf_counter() - started) / args.draws
    assert np.array_equal(one, many)

    # the naive peer: the resample's pairs written out and ranked by scipy, on the same resamples
    draw = np.random.default_rng(1)
    started = time.perf_counter()
    for k in range(args.rebuilt):
        idx = np.sort(draw.integers(0, n, size=n))
        i, j = np.triu_indices(n, 1)
        keep = idx[i] != idx[j]
        a, b = idx[i][keep], idx[j][keep]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        pair = lo * n - lo * (lo + 1) // 2 + (hi - lo - 1)  # condensed index of (lo, hi)
        value = spearmanr(rsa.a[pair], rsa.b[pair]).statistic
        assert abs(value - one[k]) < 1e-9, (value, one[k])
    timings["rebuilt (scipy)"] = (time.perf_counter() - started) / args.rebuilt

    base = timings["rebuilt (scipy)"]
    print(
        json.dumps(
            {
                "concepts": n,
                "pairs": n * (n - 1) // 2,
                **{f"{way} ms/draw": round(s * 1e3, 2) for way, s in timings.items()},
                **{f"{way} speed-up vs rebuilt": round(base / s, 1) for way, s in timings.items() if s != base},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

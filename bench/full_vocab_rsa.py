"""Exact RSA on the whole embedded Lancaster vocabulary (39,707 concepts, 788M pairs).

Compares the human norms with a perturbed copy (Gaussian noise, SD 0.5, clipped to 0-5)
under the study's recipe, and prints the value, wall time and peak memory (RSS).
Usage: python bench/full_vocab_rsa.py [--n N] [--noise SD]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from embodiment.metrics import rsa
from embodiment.norms import load_norms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="first N concepts only (default: all)")
    parser.add_argument("--noise", type=float, default=0.5)
    args = parser.parse_args()
    norms = load_norms("embedded")
    human = norms.means[: args.n]
    model = np.clip(human + np.random.default_rng(0).normal(scale=args.noise, size=human.shape), 0, 5)
    start = time.perf_counter()
    result = rsa(model, human, progress=lambda s: print(f"  [{time.perf_counter() - start:6.1f}s] {s}", flush=True))
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"n={result.n_concepts:,} pairs={result.n_pairs:,} path={result.path} recipe={result.recipe.name}")
    print(f"spearman RSA = {result.value:.6f}   time = {seconds:.1f} s   peak RSS = {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()

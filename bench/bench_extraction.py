"""Claim 3: concepts/s of the Ray Data evaluation pipeline (RatingScorer actors) vs a plain
single-process loop with the same model and batch size, measured in one run.

Both include loading the model once. Usage:
python bench/bench_extraction.py [--model smollm2-135m] [--concepts 512] [--actors 1,2]
Targets: overhead <= 10% at one actor; throughput grows with actors where cores allow.
"""

from __future__ import annotations

import argparse
import os
import time

import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--concepts", type=int, default=512)  # enough that start-up is not all it measures
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--actors", default="1,2")
    args = parser.parse_args()
    import ray

    from embodiment.models import load_model
    from embodiment.scoring import score_ratings
    from grid.data import prepare_norms
    from grid.pipeline import evaluate_model
    from grid.spec import parse_job

    actors = [int(a) for a in args.actors.split(",")]
    raw = {"name": "bench-extract", "models": [args.model],
           "norms": {"en": {"source": "embedded", "max_train": 10, "max_test": args.concepts}},
           "evaluation": {"batch_size": args.batch, "embeddings": False}}
    spec = parse_job(raw)
    data = prepare_norms(spec.norms, spec.seed)
    test = data["en"].test
    n = len(test.words)

    start = time.perf_counter()
    lm = load_model(args.model)
    score_ratings(lm.model, lm.tokenizer, test.words, test.dimensions, batch_size=args.batch)
    plain = time.perf_counter() - start
    del lm

    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, max(actors)), include_dashboard=False, log_to_driver=False)
    rows = [("plain loop (1 process)", plain)]
    for k in actors:
        # each actor gets its share of the cores (Ray sets its torch threads from it), as
        # the plain loop gets all of them
        share = max(1, (os.cpu_count() or 1) // k)
        spec = parse_job({**raw, "resources": {"scorer_actors": k, "cpus_per_worker": share}})
        start = time.perf_counter()
        evaluate_model(spec, args.model, None, data, embeddings=False)
        rows.append((f"Ray Data, {k} actor(s)", time.perf_counter() - start))
    ray.shutdown()
    print(f"model {args.model}; {n} concepts x {len(test.dimensions)} dimensions; batch {args.batch}; {os.cpu_count()} cores")
    print(f"{'method':<26} {'seconds':>8} {'concepts/s':>11}")
    for label, t in rows:
        print(f"{label:<26} {t:8.2f} {n / t:11.2f}")
    print(f"ratio: Ray Data (1 actor) / plain time = {rows[1][1] / plain:.2f} (target <= 1.10)")
    if len(rows) > 2:
        print(f"ratio: {actors[-1]} actors vs 1 actor throughput = {rows[1][1] / rows[-1][1]:.2f}x")


if __name__ == "__main__":
    main()

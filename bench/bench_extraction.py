"""Claim 3: concepts/s of the Ray Data evaluation pipeline (RatingScorer actors) vs a plain
single-process loop with the same model and batch size, measured in one run.

Each side pays the same per-process costs: the plain loop runs in a fresh Python process
(importing torch and transformers, loading the model, scoring), as the Ray actor does in
its worker process. The Ray cluster itself is started before the clock, as users submit
to a running cluster; its daemons run during the Ray side only. Rounds alternate
(plain, then Ray) so that drift in this shared machine's speed hits both sides, and the
ratio is the median of the per-round ratios.

Usage:
python bench/bench_extraction.py [--model smollm2-135m] [--concepts 512] [--actors 1,2] [--rounds 3]
Targets: overhead <= 10% at one actor; throughput grows with actors where cores allow.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _job(args: argparse.Namespace, **extra) -> dict:
    return {
        "name": "bench-extract",
        "models": [args.model],
        "norms": {"en": {"source": "embedded", "max_train": 10, "max_test": args.concepts}},
        "evaluation": {"batch_size": args.batch, "embeddings": False},
        **extra,
    }


def plain_loop(args: argparse.Namespace) -> None:
    """The peer, run in its own process: prints its seconds from the first torch import."""
    from grid.data import prepare_norms
    from grid.spec import parse_job

    spec = parse_job(_job(args))
    test = prepare_norms(spec.norms, spec.seed)["en"].test
    start = time.perf_counter()
    from embodiment.models import load_model
    from embodiment.scoring import score_ratings

    lm = load_model(args.model)
    score_ratings(lm.model, lm.tokenizer, test.words, test.dimensions, batch_size=args.batch)
    print(
        json.dumps(
            {"seconds": time.perf_counter() - start, "concepts": len(test.words), "dimensions": len(test.dimensions)}
        )
    )


def _run_plain(args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--plain",
        "--model",
        args.model,
        "--concepts",
        str(args.concepts),
        "--batch",
        str(args.batch),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _start_cluster(actors: list[int]) -> None:
    import ray
    import ray.data

    ray.init(
        address="local", num_cpus=max(os.cpu_count() or 1, max(actors)), include_dashboard=False, log_to_driver=False
    )
    ray.data.range(8).map_batches(lambda batch: batch).take_all()  # Ray Data's once-per-cluster actors
    time.sleep(5)  # let the new cluster's daemons finish starting


def _run_ray(args: argparse.Namespace, actors: list[int], data: dict) -> dict[int, float]:
    from grid.pipeline import evaluate_model
    from grid.spec import parse_job

    cores = os.cpu_count() or 1
    seconds = {}
    for k in actors:
        # each actor gets its share of the cores (Ray sets its torch threads from it), as
        # the plain loop gets all of them
        spec = parse_job(_job(args, resources={"scorer_actors": k, "cpus_per_worker": max(1, cores // k)}))
        start = time.perf_counter()
        evaluate_model(spec, args.model, None, data, embeddings=False)
        seconds[k] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--concepts", type=int, default=512)  # enough that start-up is not all it measures
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--actors", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)  # the peer's own process
    args = parser.parse_args()
    if args.plain:
        plain_loop(args)
        return
    actors = [int(a) for a in args.actors.split(",")]
    import ray

    from grid.data import prepare_norms
    from grid.spec import parse_job

    spec = parse_job(_job(args))
    data = prepare_norms(spec.norms, spec.seed)  # the same norms for every round and pool size
    plain, ray_runs, shape = [], [], {}
    _start_cluster(actors)
    try:
        for r in range(args.rounds):
            shape = _run_plain(args)
            plain.append(shape["seconds"])
            ray_runs.append(_run_ray(args, actors, data))
            print(
                f"round {r + 1}: plain {plain[-1]:.2f} s; "
                + "; ".join(f"Ray Data {k} actor(s) {s:.2f} s" for k, s in ray_runs[-1].items()),
                flush=True,
            )
    finally:
        ray.shutdown()
    n = shape["concepts"]
    print(
        f"model {args.model}; {n} concepts x {shape['dimensions']} dimensions; batch {args.batch}; "
        f"{os.cpu_count()} cores; {args.rounds} rounds, medians"
    )
    print(f"{'method':<26} {'seconds':>8} {'concepts/s':>11}")
    rows = [("plain loop (1 process)", statistics.median(plain))]
    rows += [(f"Ray Data, {k} actor(s)", statistics.median(run[k] for run in ray_runs)) for k in actors]
    for label, t in rows:
        print(f"{label:<26} {t:8.2f} {n / t:11.2f}")
    ratios = [run[actors[0]] / p for run, p in zip(ray_runs, plain)]
    print(f"per-round ratios: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(
        f"ratio: Ray Data ({actors[0]} actor) / plain time = {statistics.median(ratios):.2f} (median; target <= 1.10)"
    )
    if len(actors) > 1:
        print(f"ratio: {actors[-1]} actors vs {actors[0]} actor throughput = {rows[1][1] / rows[-1][1]:.2f}x")
        print(f"ratio: Ray Data ({actors[-1]} actors) / plain time = {rows[-1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()

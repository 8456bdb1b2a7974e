"""The aggregate stage at the replication's size: wall time of ``grid.aggregate.aggregate``
on tables shaped like the replication run's, at a given number of bootstrap draws.

The tables are synthetic but of the replication's shape: base + 2 trials rating 1,000
held-out concepts on 11 dimensions; hidden states (576 floats) at 5 layers for the
held-out concepts of every model and for 400 training concepts of the base (the probe);
560 colour questions for two models; RSA over all / sensory / motor. The science is the
same whatever the values; only the sizes set the cost.

Run it on two commits to compare them on the same machine in one session, e.g.
``python bench/bench_aggregate.py --n-boot 200`` on the commit before the vectorised RSA
bootstrap and ``python bench/bench_aggregate.py --n-boot 1000`` after it.
Usage: python bench/bench_aggregate.py [--n-boot 1000] [--concepts 1000] [--seed 0] [--store none|all|layers]\n(--store: the driver's peak memory with the embeddings read whole or a layer at a time.)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

DIMS = [
    "Auditory",
    "Gustatory",
    "Haptic",
    "Interoceptive",
    "Olfactory",
    "Visual",
    "Foot_leg",
    "Hand_arm",
    "Head",
    "Mouth",
    "Torso",
]
LAYERS = (0, 8, 15, 22, 30)


def tables(n_test: int, n_train: int, seed: int, embeddings: bool = True, layers=LAYERS):
    """The synthetic tables and the training norms (``embeddings=False``: the same draws, no hidden states)."""
    from embodiment.norms import Norms

    rng = np.random.default_rng(seed)
    words = [f"concept{i:05d}" for i in range(n_test + n_train)]
    human = rng.uniform(0, 5, size=(len(words), len(DIMS)))
    test, train = words[:n_test], words[n_test:]
    ratings, emb = [], []
    for k, trial in enumerate(["base", "t1", "t2"]):
        model = np.clip(human[:n_test] + rng.normal(scale=2.0 - 0.5 * k, size=(n_test, len(DIMS))), 0, 5)
        for j, d in enumerate(DIMS):
            ratings.append(
                pd.DataFrame(
                    {
                        "trial_id": trial,
                        "condition": trial,
                        "model": "m",
                        "language": "en",
                        "concept": test,
                        "dimension": d,
                        "human": human[:n_test, j],
                        "expected": model[:, j],
                    }
                )
            )
        who = words if trial == "base" else test
        for layer in layers:
            vectors = rng.normal(size=(len(who), 576)).astype(np.float32)
            if not embeddings:
                continue
            emb.append(
                pd.DataFrame(
                    {
                        "trial_id": trial,
                        "condition": trial,
                        "model": "m",
                        "language": "en",
                        "concept": who,
                        "split": ["test"] * n_test + ["train"] * (len(who) - n_test),
                        "layer": layer,
                        "pooling": "mean",
                        "vector": list(vectors),
                    }
                )
            )
    choices = pd.DataFrame(
        [
            {"trial_id": t, "condition": t, "model": "m", "index": i, "is_correct": bool(rng.random() < 0.3)}
            for t in ("base", "t1")
            for i in range(560)
        ]
    )
    trials = pd.DataFrame(
        {"trial_id": ["t1", "t2"], "condition": ["t1", "t2"], "format": ["rating", "mcq"], "eval_score": [0.2, 0.1]}
    )
    norms = Norms(train, DIMS, human[n_test:], "en", "synthetic")
    return {
        "ratings": pd.concat(ratings, ignore_index=True),
        "embeddings": pd.concat(emb, ignore_index=True) if emb else pd.DataFrame(),
        "choices": choices,
        "trials": trials,
    }, {"en": norms}


def _write_store(data: dict, folder: str) -> None:
    """The tables as a run's results store in ``folder``."""
    from grid.results import ResultsStore

    store = ResultsStore(folder)
    for name, frame in data.items():
        store.write(name, "bench", frame)


def _read_store(folder: str, layers: bool) -> dict:
    """The tables read back as the aggregate stage reads them: embeddings whole, or a layer at a time."""
    from grid.hidden_states import EmbeddingLayers
    from grid.results import ResultsStore

    store = ResultsStore(folder)
    tables = {t: store.read(t) for t in ("ratings", "choices", "trials")}
    tables["embeddings"] = EmbeddingLayers(store=store) if layers else store.read("embeddings")
    return tables


def main() -> None:
    import resource

    from grid.aggregate import aggregate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--concepts", type=int, default=1000)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all-layers", action="store_true", help="every one of SmolLM2's 31 hidden states, not 5")
    parser.add_argument("--write-store", default=None, metavar="DIR", help="write the tables as a results store; exit")
    parser.add_argument("--read-store", default=None, metavar="DIR", help="aggregate a store of --write-store")
    parser.add_argument("--layers", action="store_true", help="with --read-store: embeddings a layer at a time")
    args = parser.parse_args()
    layers = tuple(range(31)) if args.all_layers else LAYERS
    data, train_norms = tables(args.concepts, args.train, args.seed, embeddings=not args.read_store, layers=layers)
    if args.write_store:
        _write_store(data, args.write_store)
        return
    if args.read_store:  # the in-memory tables are dropped first: only what the store gives stays
        data = _read_store(args.read_store, args.layers)
    started = time.perf_counter()
    out = aggregate(data, subsets=("all", "sensory", "motor"), n_boot=args.n_boot, seed=0, train_norms=train_norms)
    seconds = time.perf_counter() - started
    read = ("a layer at a time" if args.layers else "whole") if args.read_store else "in memory"
    print(
        json.dumps(
            {
                "n_boot": args.n_boot,
                "concepts": args.concepts,
                "embeddings": read,
                "seconds": round(seconds, 1),
                "peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "metrics_rows": len(out["metrics"]),
                "transfer_rows": len(out["transfer"]),
            }
        )
    )


if __name__ == "__main__":
    main()

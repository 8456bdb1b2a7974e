"""Rating fine-tuning on shared prompt prefixes vs full prompts: optimizer steps per second.

Trains SmolLM2-135M (embedded) with LoRA under DeepSpeed on the study's rating prompts
of the embedded norms, once with every distinct prompt prefix of a batch run once and
its keys and values shared (``shared_prefix: true``, ours) and once with every prompt run
whole (the peer: how training ran before), same examples, same batches, in alternating
rounds; the first step of each run (allocation, DeepSpeed set-up) is not timed. Batches
of one dimension (one prefix per batch) and of every dimension of a few concepts (six
prefixes per batch, the default) are both measured. Losses of the two sides are checked
equal (they are the same computation).

Usage: python bench/bench_prefix_training.py [--steps 6] [--batch 24] [--rounds 2] [--batches dimension,concept]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def steps_per_second(shared: bool, batches: str, args, data) -> tuple[float, list[float]]:
    from embodiment.models import load_model
    from embodiment.training import TrainConfig, train

    lm = load_model("smollm2-135m")
    stamps: list[float] = []
    cfg = TrainConfig(
        format="rating",
        steps=args.steps + 1,
        batch_size=args.batch,
        learning_rate=1e-3,
        engine="deepspeed",
        shared_prefix=shared,
        rating_batches=batches,
        seed=0,
    )
    result = train(
        cfg,
        lm.model,
        lm.tokenizer,
        data,
        f"/tmp/bench_prefix_training/{shared}-{batches}",
        progress=lambda step, loss: stamps.append(time.perf_counter()),
    )
    return args.steps / (stamps[-1] - stamps[0]), result.losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps per run")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batches", default="dimension,concept")
    args = parser.parse_args()
    from embodiment.formats import TaskData
    from embodiment.splits import sample_rows
    from embodiment.norms import load_norms

    norms = load_norms("embedded")
    data = TaskData(
        norms={"en": norms.select([norms.words[i] for i in sample_rows(len(norms), 200, 0, "max_train", key="words")])}
    )
    print(
        f"SmolLM2-135M, LoRA r8, DeepSpeed ZeRO-0 fp32, batch {args.batch} prompts, {args.steps} timed steps a run, "
        f"{args.rounds} alternating rounds"
    )
    print(f"{'batches':<10}{'shared prefix':>16}{'full prompts':>16}{'ratio':>8}")
    for batches in args.batches.split(","):
        ours, peer = [], []
        for _ in range(args.rounds):
            fast, fast_losses = steps_per_second(True, batches, args, data)
            slow, slow_losses = steps_per_second(False, batches, args, data)
            np.testing.assert_allclose(fast_losses, slow_losses, rtol=1e-3)  # the same computation
            ours.append(fast)
            peer.append(slow)
        ratio = statistics.median(o / p for o, p in zip(ours, peer))
        print(
            f"{batches:<10}{statistics.median(ours):>11.3f} st/s{statistics.median(peer):>11.3f} st/s{ratio:>7.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()

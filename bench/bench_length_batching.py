"""Batching by length: concept embeddings (words of 1 to 5+ tokens) and, on the study's
colour multiple-choice questions (~70 to ~440 tokens), MCQ scoring with sequences batched
by length vs in the order given, and one epoch of mcq training steps (forward + backward)
with micro-batches grouped by length vs drawn at random, on SmolLM2-135M, in one run. The
peers are the same functions with the grouping off (``by_length=False``;
``_micro_batch_indices`` without lengths), which is how they ran before. Rounds alternate
ours/peer; times are medians.

Usage: python bench/bench_length_batching.py [--concepts 1024] [--items 96] [--batch 16] [--rounds 3]
       [--only embeddings,scoring,training]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _ab import alternate, colour_questions, spread


def _padding(batches: list[dict]) -> float:
    return 1 - sum(float(b["attention_mask"].sum()) for b in batches) / sum(
        b["attention_mask"].numel() for b in batches
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--items", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--concepts", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="embeddings,scoring,training")
    args = parser.parse_args()
    from embodiment.embeddings import extract_embeddings
    from embodiment.formats import FORMATS, TaskData
    from embodiment.models import load_model
    from embodiment.norms import load_embedded
    from embodiment.choices import score_mcq
    from embodiment.training import BatchPlan, ObjectiveModel
    from embodiment.training.batching import _micro_batch_indices

    lm = load_model(args.model)
    model, tok = lm.model, lm.tokenizer
    items = colour_questions(args.items, spread_over_file=True, bench="bench_length_batching")
    fmt = FORMATS["mcq"]().configure(TaskData(mcq_items=items))
    examples = fmt.examples(TaskData(mcq_items=items))
    lengths = np.array([fmt.length(ex, tok) for ex in examples])
    module = ObjectiveModel(model, fmt.prepare(tok))
    steps = len(examples) // args.batch  # one epoch: both sides see every example once

    def epoch_batches(grouped: bool) -> list[dict]:
        return [
            fmt.collate(
                [
                    examples[i]
                    for i in _micro_batch_indices(
                        len(examples), m, args.batch, 0, 1, 0, BatchPlan(keys=lengths) if grouped else None
                    )
                ],
                tok,
            )
            for m in range(steps)
        ]

    def train_epoch(batches):
        model.train()
        losses = []
        for batch in batches:
            loss = module(**batch)
            loss.backward()
            losses.append(loss.item())
        model.zero_grad(set_to_none=True)
        model.eval()
        return float(np.mean(losses))

    def mcq(by_length):
        model.eval()
        return score_mcq(model, tok, items, batch_size=args.batch, by_length=by_length)["loglik"].to_numpy()

    words = spread(load_embedded().words, args.concepts)

    def embeddings(by_length):
        model.eval()
        return extract_embeddings(model, tok, words, batch_size=32, by_length=by_length).vectors["mean"]

    grouped, drawn = epoch_batches(True), epoch_batches(False)
    work = {
        "embeddings": ((lambda: embeddings(True)), (lambda: embeddings(False)), f"{len(words)} concepts", None),
        "mcq scoring": ((lambda: mcq(True)), (lambda: mcq(False)), f"{len(items)} items x 4 options", None),
        "mcq training epoch": (
            (lambda: train_epoch(grouped)),
            (lambda: train_epoch(drawn)),
            f"{steps} steps of {args.batch}",
            (_padding(grouped), _padding(drawn)),
        ),
    }
    keys = {"embeddings": "embeddings", "scoring": "mcq scoring", "training": "mcq training epoch"}
    work = {keys[k]: work[keys[k]] for k in args.only.split(",")}
    print(
        f"model {args.model}; {len(items)} colour questions, {lengths.min()}-{lengths.max()} tokens; "
        f"{torch.get_num_threads()} threads; {args.rounds} rounds, medians"
    )
    print(f"{'workload':<20} {'size':<22} {'ours (s)':>9} {'peer (s)':>9} {'ratio':>6}  padding ours / peer")
    for name, (ours_fn, peer_fn, size, padding) in work.items():
        o, p, a, b = alternate(ours_fn, peer_fn, args.rounds)
        if name != "mcq training epoch":  # same numbers, same order (batches differ: fp32 rounding may)
            np.testing.assert_allclose(a, b, atol=1e-3, err_msg=f"{name}: by length disagrees with the peer")
        pad = f"  {padding[0]:.1%} / {padding[1]:.1%}" if padding else ""
        print(f"{name:<20} {size:<22} {o:9.2f} {p:9.2f} {p / o:5.2f}x{pad}", flush=True)
    print("ratio: peer / ours time per workload above (in the order given or drawn at random / batched by length)")


if __name__ == "__main__":
    main()

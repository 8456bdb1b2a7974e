"""Base vs LoRA-fine-tuned SmolLM2-135M on held-out words of the embedded Lancaster norms.

Trains the study's rating format under DeepSpeed on CPU and prints per-dimension
Spearman and RSA (study recipe) on held-out words, before and after, with timings.
Usage: python bench/smollm2_finetune.py [--steps 150] [--train-words 600] [--test-words 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from embodiment.formats import TaskData
from embodiment.metrics import per_dimension, rsa
from embodiment.models import load_model
from embodiment.models.loading import load_adapter
from embodiment.norms import load_norms
from embodiment.scoring import score_ratings
from embodiment.splits import draw_sides
from embodiment.training import TrainConfig, train


def evaluate(model, tokenizer, norms):
    scored = score_ratings(model, tokenizer, norms.words, norms.dimensions, batch_size=64)
    pred = np.column_stack([scored[scored.dimension == d]["expected"].to_numpy() for d in norms.dimensions])
    rows = {
        r["dimension"]: r["value"] for r in per_dimension(pred, norms.means, norms.dimensions, methods=("spearman",))
    }
    return rows, rsa(pred, norms.means).value, float(scored["digit_mass"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train-words", type=int, default=600)
    parser.add_argument("--test-words", type=int, default=300)
    parser.add_argument("--out", default="results/smollm2_finetune")
    args = parser.parse_args()
    norms = load_norms("embedded")
    # common words only: the norms' rarest entries are noise to a 135M model
    pool = [w for w in norms.words if w.isalpha() and len(w) > 3][::20]
    train_words, _, test_words = draw_sides(
        pool, test_fraction=0.35, seed=0, n_train=args.train_words, n_test=args.test_words
    )
    train_norms, test_norms = norms.select(train_words), norms.select(test_words)
    lm = load_model("smollm2-135m")
    t = time.perf_counter()
    base, base_rsa, base_mass = evaluate(lm.model, lm.tokenizer, test_norms)
    t_eval = time.perf_counter() - t
    cfg = TrainConfig(
        format="rating",
        lora=True,
        lora_rank=8,
        lora_alpha=16,
        learning_rate=args.lr,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=0,
        engine="deepspeed",
        zero_stage=0,
    )
    result = train(
        cfg,
        lm.model,
        lm.tokenizer,
        TaskData(norms={"en": train_norms}),
        args.out,
        progress=lambda step, loss: (
            print(f"  step {step}/{args.steps} loss {loss:.3f}", flush=True) if step % 25 == 0 else None
        ),
    )
    tuned_model = load_adapter(load_model("smollm2-135m").model, result.adapter_dir).eval()
    tuned, tuned_rsa, tuned_mass = evaluate(tuned_model, lm.tokenizer, test_norms)
    print(
        f"\nheld-out words: {len(test_norms)}, train words: {len(train_norms)}, steps: {result.steps}, "
        f"batch {args.batch_size}, lr {args.lr}, train time {result.seconds:.0f} s, eval time {t_eval:.0f} s per model"
    )
    print(f"loss: first {np.mean(result.losses[:10]):.3f} -> last {np.mean(result.losses[-10:]):.3f}")
    print(f"{'dimension':<14}{'base':>8}{'tuned':>8}")
    for d in test_norms.dimensions:
        print(f"{d:<14}{base[d]:8.3f}{tuned[d]:8.3f}")
    print(f"{'RSA (wu2026)':<14}{base_rsa:8.3f}{tuned_rsa:8.3f}")
    print(f"{'digit mass':<14}{base_mass:8.3f}{tuned_mass:8.3f}")


if __name__ == "__main__":
    main()

"""Format 4: "which is experienced more through X: A or B?", pairs drawn from the norms."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from embodiment.formats.base import (
    Evaluation,
    TaskData,
    TaskFormat,
    continuation_batch,
    continuation_loss,
    pad_id,
    register_format,
)
from embodiment.prompts import pairwise_prompt
from embodiment.choices import encode_pair, loglikelihoods

MIN_GAP = 0.5  # pairs closer than this on the dimension are too ambiguous to label


def draw_pairs(data: TaskData, pairs_per_concept: int = 2) -> list[dict]:
    """Seeded pairs of concepts per (language, dimension) whose ratings differ by >= MIN_GAP."""
    rng = np.random.default_rng(data.seed)
    out = []
    for lang, norms in data.norms.items():
        n = len(norms.words)
        for j, dim in enumerate(norms.dimensions):
            for _ in range(pairs_per_concept):
                a, b = rng.permutation(n), rng.permutation(n)
                for i, k in zip(a, b):
                    gap = norms.means[i, j] - norms.means[k, j]
                    if i != k and abs(gap) >= MIN_GAP:
                        out.append(
                            {
                                "a": norms.words[i],
                                "b": norms.words[k],
                                "dimension": dim,
                                "language": lang,
                                "answer": "A" if gap > 0 else "B",
                                "gap": float(gap),
                            }
                        )
    return out


@register_format
class PairwiseFormat(TaskFormat):
    name = "pairwise"

    def examples(self, data: TaskData) -> list[dict]:
        return draw_pairs(data)

    def collate(self, examples, tokenizer):
        pairs = [
            encode_pair(
                tokenizer,
                pairwise_prompt(tokenizer, ex["a"], ex["b"], ex["dimension"], ex["language"]),
                " " + ex["answer"],
            )
            for ex in examples
        ]
        return continuation_batch(pairs, pad_id(tokenizer))

    def loss(self, module, batch):
        return continuation_loss(module.lm, batch)

    def evaluate(self, model, tokenizer, data, *, head=None, batch_size=32):
        pairs = draw_pairs(data, pairs_per_concept=1)
        queries = []
        for p in pairs:
            ctx = pairwise_prompt(tokenizer, p["a"], p["b"], p["dimension"], p["language"])
            queries += [(ctx, " A"), (ctx, " B")]
        ll = np.array([s for s, _ in loglikelihoods(model, tokenizer, queries, batch_size=batch_size)]).reshape(-1, 2)
        frame = pd.DataFrame(pairs)
        frame["p_a"] = np.exp(ll[:, 0] - np.logaddexp(ll[:, 0], ll[:, 1]))
        frame["chosen"] = np.where(frame["p_a"] >= 0.5, "A", "B")
        frame["is_correct"] = frame["chosen"] == frame["answer"]
        rho = stats.spearmanr(frame["p_a"], frame["gap"]).statistic if len(frame) > 2 else float("nan")
        return Evaluation(
            choices=frame, summary={"accuracy": float(frame["is_correct"].mean()), "spearman_gap": float(rho)}
        )

"""Format 3: a small linear head on pooled hidden states predicts the dimension vector."""

from __future__ import annotations

import numpy as np
import torch

from embodiment.formats.base import (
    Evaluation,
    TaskData,
    TaskFormat,
    concept_span_batch,
    mean_spearman,
    pooled_concept_batches,
    register_format,
    pooled_hidden,
    rating_rows,
)

SCALE = 5.0  # targets are predicted on 0-1 and reported back on the 0-5 scale


@register_format
class RegressionHeadFormat(TaskFormat):
    name = "regression"
    batch_by_length = True  # concepts of 1 to several tokens: random batches carry padding

    def configure(self, data: TaskData) -> "RegressionHeadFormat":
        sizes = {len(n.dimensions) for n in data.norms.values()}
        if len(sizes) != 1:
            raise ValueError("the regression head needs the same number of dimensions in every language")
        self.head_outputs = sizes.pop()
        return self

    def examples(self, data: TaskData) -> list[dict]:
        return [
            {"concept": w, "target": norms.means[i] / SCALE}
            for norms in data.norms.values()
            for i, w in enumerate(norms.words)
        ]

    def collate(self, examples, tokenizer):
        batch = concept_span_batch(tokenizer, [ex["concept"] for ex in examples])
        batch["target"] = torch.tensor(np.stack([ex["target"] for ex in examples]), dtype=torch.float32)
        return batch

    def loss(self, module, batch):
        pooled = pooled_hidden(module.lm, batch["input_ids"], batch["attention_mask"], batch["span_mask"])
        return torch.nn.functional.mse_loss(module.head(pooled).float(), batch["target"])

    @torch.no_grad()
    def predict(self, model, head, tokenizer, concepts, batch_size=32) -> np.ndarray:
        head = head.to(next(model.parameters()).device)
        dtype = next(head.parameters()).dtype
        return np.concatenate(
            [
                (head(pooled.to(dtype)).float() * SCALE).clamp(0, SCALE).cpu().numpy()
                for pooled in pooled_concept_batches(model, tokenizer, concepts, batch_size)
            ]
        )

    def evaluate(self, model, tokenizer, data, *, head=None, batch_size=32):
        if head is None:
            raise ValueError("the regression format needs its trained head to evaluate")
        preds = {
            lang: self.predict(model, head, tokenizer, norms.words, batch_size) for lang, norms in data.norms.items()
        }
        ratings = rating_rows(data.norms, preds, "regression_head")
        return Evaluation(ratings=ratings, summary={"mean_spearman": mean_spearman(ratings)})

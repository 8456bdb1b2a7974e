"""Format 5: representational alignment -- a differentiable RSA-style objective.

Per batch of concepts, the model's RDM (cosine distances between pooled hidden states)
is pulled toward the human RDM (cosine distances between z-scored rating vectors) by
minimising 1 - Pearson(model RDM, human RDM) over the batch's concept pairs. Pearson
stands in for the Spearman of the evaluation because ranks are not differentiable.
"""

from __future__ import annotations

import numpy as np
import torch

from embodiment.formats.base import (
    Evaluation,
    TaskData,
    TaskFormat,
    concept_span_batch,
    pooled_concept_batches,
    pooled_hidden,
    register_format,
)
from embodiment.metrics import rsa
from embodiment.metrics.rdm import STANDARDISERS


def _cosine_rdm(x: torch.Tensor) -> torch.Tensor:
    unit = torch.nn.functional.normalize(x, dim=1)
    d = 1.0 - unit @ unit.T
    iu = torch.triu_indices(len(x), len(x), offset=1)
    return d[iu[0], iu[1]]


def alignment_loss(model_vectors: torch.Tensor, human_vectors: torch.Tensor) -> torch.Tensor:
    """1 - Pearson between the condensed cosine RDMs of two (b, d) feature batches."""
    a = _cosine_rdm(model_vectors.float())
    b = _cosine_rdm(human_vectors.float())
    a = a - a.mean()
    b = b - b.mean()
    return 1.0 - (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12)


@register_format
class AlignmentFormat(TaskFormat):
    name = "alignment"
    # batch_by_length stays False: the loss compares the RDM of a whole batch, and batches
    # of similar-length words would never compare a short word with a long one

    def examples(self, data: TaskData) -> list[dict]:
        out = []
        for norms in data.norms.values():
            z = STANDARDISERS["zscore"](norms.means)
            out += [{"concept": w, "human": z[i]} for i, w in enumerate(norms.words)]
        return out

    def collate(self, examples, tokenizer):
        batch = concept_span_batch(tokenizer, [ex["concept"] for ex in examples])
        batch["human"] = torch.tensor(np.stack([ex["human"] for ex in examples]), dtype=torch.float32)
        return batch

    def loss(self, module, batch):
        pooled = pooled_hidden(module.lm, batch["input_ids"], batch["attention_mask"], batch["span_mask"])
        return alignment_loss(pooled, batch["human"])

    @torch.no_grad()
    def evaluate(self, model, tokenizer, data, *, head=None, batch_size=32):
        summary = {}
        for lang, norms in data.norms.items():
            emb = np.concatenate(
                [pooled.cpu().numpy() for pooled in pooled_concept_batches(model, tokenizer, norms.words, batch_size)]
            )
            summary[f"rsa_{lang}"] = rsa(
                emb,
                norms.means,
                {"standardise": "none", "rdm": "cosine", "compare": "spearman", "name": "embedding-vs-human"},
            ).value
        summary["rsa"] = float(np.mean(list(summary.values())))
        return Evaluation(summary=summary)

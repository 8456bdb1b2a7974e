"""Format 1, the study's: "how strongly is X experienced by <sense>, 0-5" per
(concept, dimension, language); the target is the human mean as a soft digit distribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from embodiment.formats.base import Evaluation, TaskData, TaskFormat, mean_spearman, pad_id
from embodiment.prompts import rating_prompt
from embodiment.scoring import score_ratings, soft_digit_target


class RatingFormat(TaskFormat):
    name = "rating"

    def examples(self, data: TaskData) -> list[dict]:
        out = []
        for lang, norms in data.norms.items():
            for i, word in enumerate(norms.words):
                for j, dim in enumerate(norms.dimensions):
                    out.append({"concept": word, "dimension": dim, "language": lang, "target": float(norms.means[i, j])})
        return out

    def collate(self, examples, tokenizer):
        seqs = []
        for ex in examples:
            sp = rating_prompt(tokenizer, ex["concept"], ex["dimension"], ex["language"])
            seqs.append(tokenizer.encode(sp.prefix, add_special_tokens=False) + tokenizer.encode(sp.suffix, add_special_tokens=False))
        # Left padding puts every answer position last, so the LM head runs on one position
        # per row (logits_to_keep=1) instead of the whole prompt; explicit positions keep
        # the model's view identical to the right-padded scorer's.
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id(tokenizer), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        positions = (mask.cumsum(1) - 1).clamp_min(0)
        target = torch.tensor(np.stack([soft_digit_target(ex["target"]) for ex in examples]), dtype=torch.float32)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "target": target}

    def loss(self, module, batch):
        logits = module.lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           position_ids=batch["position_ids"], logits_to_keep=1).logits
        logp = torch.log_softmax(logits[:, -1].float(), dim=-1)
        digit_logp = logp[:, module.digit_ids]
        return -(batch["target"] * digit_logp).sum(1).mean()

    def evaluate(self, model, tokenizer, data, *, head=None, batch_size=32):
        frames = []
        for lang, norms in data.norms.items():
            scored = score_ratings(model, tokenizer, norms.words, norms.dimensions, lang, batch_size=batch_size)
            human = {(w, d): norms.means[i, j] for i, w in enumerate(norms.words) for j, d in enumerate(norms.dimensions)}
            scored["human"] = [human[(c, d)] for c, d in zip(scored["concept"], scored["dimension"])]
            frames.append(scored)
        ratings = pd.concat(frames, ignore_index=True)
        return Evaluation(ratings=ratings, summary={"mean_spearman": mean_spearman(ratings),
                                                    "digit_mass": float(ratings["digit_mass"].mean())})

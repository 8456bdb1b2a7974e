"""Format 1, the study's: "how strongly is X experienced by <sense>, 0-5" per
(concept, dimension, language); the target is the human mean as a soft digit distribution.

Every prompt of one (dimension, language) shares a ~60-token prefix and differs in the
~8 tokens of the concept and the closing turn. Training runs each distinct prefix of a
batch once and attends every example's suffix to its prefix's keys and values
(``shared_prefix``): the prefix is computed under the trained weights (LoRA changes it),
so its gradient is the sum of every example's, exactly as in the plain batch, at a
fraction of the tokens. What a batch holds (every dimension of a few concepts, or one
dimension, whose prefix then runs once a batch) is ``batches``; the trainer's sampler asks
:meth:`batch_unit` and :meth:`batch_group`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from embodiment.formats.base import Evaluation, TaskData, TaskFormat, mean_spearman, pad_id, register_format
from embodiment.padding import left_pad, positions as _positions
from embodiment.prompts import rating_prompt
from embodiment.scoring import cache_argument, digit_token_ids, returned_cache, score_ratings, soft_digit_target

#: rating losses: soft digit cross-entropy (the study's target as a distribution), squared
#: error of the expected rating (what the metrics read), or their sum
RATING_LOSSES = ("soft_ce", "expected_mse", "both")
#: what one training batch holds: every dimension of a few concepts, one dimension, or a
#: random draw of (concept, dimension) prompts
RATING_BATCHES = ("concept", "dimension", "random")


@register_format
class RatingFormat(TaskFormat):
    name = "rating"

    def __init__(self, shared_prefix: bool = True, loss_kind: str = "soft_ce", batches: str = "concept"):
        if loss_kind not in RATING_LOSSES:
            raise ValueError(f"rating loss {loss_kind!r}: expected one of {RATING_LOSSES}")
        if batches not in RATING_BATCHES:
            raise ValueError(f"rating batches {batches!r}: expected one of {RATING_BATCHES}")
        self.shared_prefix = shared_prefix
        self.loss_kind = loss_kind
        self.batches = batches
        self._ids: dict[tuple[int, str], list[int]] = {}
        self._digits: list[int] = []

    def prepare(self, tokenizer) -> "RatingFormat":
        """The answer tokens "0".."5" of this tokenizer (the loss reads their log-probabilities)."""
        self._digits = digit_token_ids(tokenizer)
        return self

    def token_ids(self) -> dict[str, list[int]]:
        return {"digit_ids": self._digits} if self._digits else {}

    def with_options(self, cfg) -> "RatingFormat":
        """``cfg.shared_prefix``, ``cfg.rating_loss`` and ``cfg.rating_batches`` (a TrainConfig)."""
        out = RatingFormat(shared_prefix=cfg.shared_prefix, loss_kind=cfg.rating_loss, batches=cfg.rating_batches)
        out._digits = self._digits
        return out

    def examples(self, data: TaskData) -> list[dict]:
        out = []
        for lang, norms in data.norms.items():
            for i, word in enumerate(norms.words):
                for j, dim in enumerate(norms.dimensions):
                    out.append(
                        {"concept": word, "dimension": dim, "language": lang, "target": float(norms.means[i, j])}
                    )
        return out

    def batch_unit(self, example: dict) -> tuple[str, str] | None:
        """With ``concept`` batches, every dimension of a concept trains in the same batch."""
        return (example["language"], example["concept"]) if self.batches == "concept" else None

    def batch_group(self, example: dict) -> tuple[str, str] | None:
        """With ``dimension`` batches, a batch holds one prompt prefix and runs it once."""
        return (example["language"], example["dimension"]) if self.batches == "dimension" else None

    def _encode(self, tokenizer, text: str) -> list[int]:
        # prefixes repeat in every batch; a ~60-token encode costs more than the lookup
        key = (id(tokenizer), text)
        if key not in self._ids:
            self._ids[key] = tokenizer.encode(text, add_special_tokens=False)
        return self._ids[key]

    def _split_ids(self, ex: dict, tokenizer) -> tuple[list[int], list[int]]:
        sp = rating_prompt(tokenizer, ex["concept"], ex["dimension"], ex["language"])
        return self._encode(tokenizer, sp.prefix), tokenizer.encode(sp.suffix, add_special_tokens=False)

    def length(self, example, tokenizer):
        prefix, suffix = self._split_ids(example, tokenizer)
        return len(suffix) if self.shared_prefix else len(prefix) + len(suffix)

    def collate(self, examples, tokenizer):
        pad = pad_id(tokenizer)
        split = [self._split_ids(ex, tokenizer) for ex in examples]
        target = torch.tensor(np.stack([soft_digit_target(ex["target"]) for ex in examples]), dtype=torch.float32)
        if not self.shared_prefix:
            # Left padding puts every answer position last, so the LM head runs on one
            # position per row (logits_to_keep=1); explicit positions keep the model's view
            # identical to the scorer's.
            ids, mask = left_pad([p + s for p, s in split], pad)
            return {"input_ids": ids, "attention_mask": mask, "position_ids": _positions(mask), "target": target}
        prefixes = list(dict.fromkeys(tuple(p) for p, _ in split))
        group = torch.tensor([prefixes.index(tuple(p)) for p, _ in split], dtype=torch.long)
        prefix_ids, prefix_mask = left_pad([list(p) for p in prefixes], pad)
        suffix_ids, suffix_mask = left_pad([s for _, s in split], pad)
        return {
            "prefix_ids": prefix_ids,
            "prefix_mask": prefix_mask,
            "group": group,
            "input_ids": suffix_ids,
            "attention_mask": suffix_mask,
            "target": target,
        }

    def answer_logits(self, lm, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Next-token logits after each rating prompt, (batch, vocabulary)."""
        if "prefix_ids" not in batch:
            return lm(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"],
                logits_to_keep=1,
            ).logits[:, -1]
        prefix_mask = batch["prefix_mask"]
        out = lm(
            input_ids=batch["prefix_ids"],
            attention_mask=prefix_mask,
            position_ids=_positions(prefix_mask),
            use_cache=True,
            logits_to_keep=1,
        )
        cache = returned_cache(out)
        group = batch["group"]
        # each example's copy of its prefix's keys and values: an index, so the backward
        # pass sums every example's gradient into its prefix
        cache.batch_select_indices(group)
        mask = batch["attention_mask"]
        full_mask = torch.cat([prefix_mask[group], mask], dim=1)
        positions = _positions(mask, prefix_mask.sum(1)[group])
        return lm(
            input_ids=batch["input_ids"],
            attention_mask=full_mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{cache_argument(lm): cache},
        ).logits[:, -1]

    def loss(self, module, batch):
        logp = torch.log_softmax(self.answer_logits(module.lm, batch).float(), dim=-1)
        digit_logp = logp[:, module.digit_ids]
        target = batch["target"]
        total = 0.0
        if self.loss_kind in ("soft_ce", "both"):
            total = total - (target * digit_logp).sum(1).mean()
        if self.loss_kind in ("expected_mse", "both"):
            scale = torch.arange(6, dtype=digit_logp.dtype, device=digit_logp.device)
            expected = torch.softmax(digit_logp, dim=-1) @ scale  # renormalised over the digits, as scored
            total = total + ((expected - target @ scale) ** 2).mean()
        return total

    def evaluate(self, model, tokenizer, data, *, head=None, batch_size=32):
        frames = []
        for lang, norms in data.norms.items():
            scored = score_ratings(model, tokenizer, norms.words, norms.dimensions, lang, batch_size=batch_size)
            human = {
                (w, d): norms.means[i, j] for i, w in enumerate(norms.words) for j, d in enumerate(norms.dimensions)
            }
            scored["human"] = [human[(c, d)] for c, d in zip(scored["concept"], scored["dimension"])]
            frames.append(scored)
        ratings = pd.concat(frames, ignore_index=True)
        return Evaluation(
            ratings=ratings,
            summary={"mean_spearman": mean_spearman(ratings), "digit_mass": float(ratings["digit_mass"].mean())},
        )

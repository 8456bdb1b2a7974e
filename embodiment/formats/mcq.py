"""Format 2: the colour multiple-choice questions; the target is the answer letter."""

from __future__ import annotations

from embodiment.formats.base import (
    Evaluation,
    TaskData,
    TaskFormat,
    continuation_batch,
    continuation_loss,
    pad_id,
    register_format,
)
from embodiment.prompts import mcq_context
from embodiment.choices import encode_pair, score_mcq


@register_format
class MultipleChoiceFormat(TaskFormat):
    name = "mcq"
    trains_on = "mcq"
    batch_by_length = True  # questions differ a lot in length: random batches are mostly padding

    def examples(self, data: TaskData) -> list[dict]:
        return [
            {"question": it["question"], "options": it["options"], "answer": it["correct_option"]}
            for it in data.mcq_items
        ]

    def collate(self, examples, tokenizer):
        pairs = [
            encode_pair(tokenizer, mcq_context(tokenizer, ex["question"], ex["options"]), " " + ex["answer"])
            for ex in examples
        ]
        return continuation_batch(pairs, pad_id(tokenizer))

    def loss(self, module, batch):
        return continuation_loss(module.lm, batch)

    def evaluate(self, model, tokenizer, data, *, head=None, batch_size=32):
        choices = score_mcq(model, tokenizer, data.mcq_items, batch_size=batch_size)
        per_item = choices.drop_duplicates("index")
        return Evaluation(choices=choices, summary={"accuracy": float(per_item["is_correct"].mean())})

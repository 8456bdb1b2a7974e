"""What every task format provides, and the data it is given.

A format is both a learning objective and an evaluation: it turns task data into
training examples, collates them into tensors, computes a loss from the model, and
scores a model on held-out data. A format is one module that defines its class with
``@register_format``; :data:`FORMATS` is filled by those decorators, and the trainer and
the grid ask the format (what it trains on, its tokenizer-dependent ids, its loss and
evaluation), never its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from embodiment.embeddings import hidden_states_only
from embodiment.norms import Norms
from embodiment.padding import right_pad


@dataclass
class TaskData:
    """The data a format trains or evaluates on.

    Attributes:
        norms: language -> norms restricted to this split's concepts and the chosen dimensions.
        mcq_items: multiple-choice items (``question``, ``options``, ``correct_option``, ``index``).
        seed: seed for anything drawn from the data (pairs, shuffles).
    """

    norms: dict[str, Norms] = field(default_factory=dict)
    mcq_items: list[dict] = field(default_factory=list)
    seed: int = 0


@dataclass
class Evaluation:
    """A format's evaluation: long tables ready for the metrics stage.

    Attributes:
        ratings: concept, dimension, language, expected/predicted, human ... (rating-like formats).
        choices: per-item option scores (choice formats).
        summary: metric name -> value (accuracy, mean Spearman ...).
    """

    ratings: pd.DataFrame | None = None
    choices: pd.DataFrame | None = None
    summary: dict[str, float] = field(default_factory=dict)


#: every registered format, by name (filled by :func:`register_format`)
FORMATS: dict[str, type["TaskFormat"]] = {}

#: what a format can train on: per-language norms (ratings), or multiple-choice items
TRAINING_DATA = ("norms", "mcq")


def register_format(cls: type["TaskFormat"]) -> type["TaskFormat"]:
    """Class decorator: add a format to :data:`FORMATS` under its ``name`` (unique)."""
    if not cls.name or cls.name in FORMATS:
        raise ValueError(f"format {cls.name!r}: a format needs a unique, non-empty name")
    if cls.trains_on not in TRAINING_DATA:
        raise ValueError(f"format {cls.name!r}: trains_on must be one of {TRAINING_DATA}")
    FORMATS[cls.name] = cls
    return cls


class TaskFormat:
    """Base class; subclasses set ``name`` and implement the four methods."""

    name: str = ""
    #: what the format's training examples come from (:data:`TRAINING_DATA`): the job's
    #: norms of the condition's languages, or the job's multiple-choice items
    trains_on: str = "norms"
    #: output size of the regression head on pooled hidden states, if the format needs one
    head_outputs: int | None = None
    #: training may batch examples of similar token length together: true where lengths
    #: vary and the loss is per example (a loss over a whole batch, like an RDM's, would
    #: then only ever compare examples of similar length)
    batch_by_length: bool = False

    def configure(self, data: TaskData) -> "TaskFormat":
        """Read sizes from the data (e.g. how many dimensions the head predicts)."""
        return self

    def with_options(self, cfg) -> "TaskFormat":
        """Take the format's own training options from a TrainConfig (none by default)."""
        return self

    def prepare(self, tokenizer) -> "TaskFormat":
        """Look up what depends on the tokenizer (e.g. answer token ids) before training."""
        return self

    def token_ids(self) -> dict[str, list[int]]:
        """Token-id lists the loss reads from the trained module (``module.<name>``, a
        buffer on the module's device); set by :meth:`prepare`."""
        return {}

    def batch_unit(self, example: dict[str, Any]):
        """Examples of one (hashable) unit are always batched together; None: no units."""
        return None

    def batch_group(self, example: dict[str, Any]):
        """Examples with the same (hashable) group are batched together; None: no grouping."""
        return None

    def examples(self, data: TaskData) -> list[dict[str, Any]]:
        """Training examples built from ``data``."""
        raise NotImplementedError

    def collate(self, examples: list[dict[str, Any]], tokenizer) -> dict[str, torch.Tensor]:
        """Tensors for one batch of examples."""
        raise NotImplementedError

    def length(self, example: dict[str, Any], tokenizer) -> int:
        """Tokens of one example once collated (its unpadded sequence length)."""
        return int(self.collate([example], tokenizer)["attention_mask"].sum())

    def loss(self, module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of ``module`` (an :class:`ObjectiveModel`) on ``batch``."""
        raise NotImplementedError

    def evaluate(self, model, tokenizer, data: TaskData, *, head=None, batch_size: int = 32) -> Evaluation:
        """Score a model on held-out ``data``."""
        raise NotImplementedError

    def predict(self, model, head, tokenizer, concepts: list[str], batch_size: int = 32) -> np.ndarray:
        """A format with a head (``head_outputs``): its (n concepts, outputs) ratings on the
        0-5 scale, read through the trained head; the grid's head pass calls this."""
        raise NotImplementedError(f"the {self.name} format has no head to rate through")


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def continuation_batch(pairs: list[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels (-100 except on the continuation tokens)."""
    ids, mask = right_pad([c + x for c, x in pairs], pad)
    labels = torch.full_like(ids, -100)
    for i, (c, x) in enumerate(pairs):
        labels[i, len(c) : len(c) + len(x)] = torch.tensor(x)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def continuation_loss(lm, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over continuation tokens (next-token shift done here).

    The vocabulary head runs only at the positions that predict a continuation token (any
    row's): a continuation is a few tokens after a long prompt, and logits at every other
    position would be computed, upcast and soft-maxed for nothing.
    """
    targets = batch["labels"][:, 1:]  # position t predicts token t + 1
    keep = (targets != -100).any(0).nonzero().squeeze(1)
    logits = lm(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep
    ).logits.float()
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets[:, keep].reshape(-1), ignore_index=-100
    )


def pooled_hidden(lm, input_ids: torch.Tensor, attention_mask: torch.Tensor, span_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the last layer's hidden states over the span tokens, (b, hidden) float32."""
    out = lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **hidden_states_only(lm))
    hidden = out.hidden_states[-1].float()
    weights = span_mask.float()
    return (hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)


def pooled_concept_batches(model, tokenizer, concepts, batch_size: int):
    """Yield :func:`pooled_hidden` of each batch of ``concepts`` on the model's device,
    without gradients and on the CPU inference linears (evaluation, never training)."""
    from embodiment.cpu_linears import inference_linears

    dev = next(model.parameters()).device
    with torch.no_grad(), inference_linears(model):
        for s in range(0, len(concepts), batch_size):
            b = {k: v.to(dev) for k, v in concept_span_batch(tokenizer, list(concepts[s : s + batch_size])).items()}
            yield pooled_hidden(model, b["input_ids"], b["attention_mask"], b["span_mask"])


def concept_span_batch(tokenizer, concepts: list[str]) -> dict[str, torch.Tensor]:
    """Concepts after the neutral embedding prefix, with a mask over each concept's tokens."""
    from embodiment.prompts import EMBEDDING_PREFIX

    prefix = tokenizer.encode(EMBEDDING_PREFIX, add_special_tokens=False)
    owns = [tokenizer.encode(" " + c, add_special_tokens=False) for c in concepts]
    ids, mask = right_pad([prefix + o for o in owns], pad_id(tokenizer))
    span = torch.zeros_like(mask)
    for i, o in enumerate(owns):
        span[i, len(prefix) : len(prefix) + len(o)] = 1
    return {"input_ids": ids, "attention_mask": mask, "span_mask": span}


def rating_rows(norms_by_lang: dict[str, Norms], predictions: dict[str, np.ndarray], source: str) -> pd.DataFrame:
    """Long ratings table from per-language (n, d) predictions aligned with the norms."""
    rows = []
    for lang, norms in norms_by_lang.items():
        pred = predictions[lang]
        for j, dim in enumerate(norms.dimensions):
            rows.append(
                pd.DataFrame(
                    {
                        "concept": norms.words,
                        "dimension": dim,
                        "language": lang,
                        "expected": pred[:, j],
                        "human": norms.means[:, j],
                        "source": source,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def mean_spearman(ratings: pd.DataFrame, column: str = "expected") -> float:
    """Mean over (language, dimension) of Spearman(model, human) -- a one-number summary.

    A dimension whose model ratings are constant (collapsed) counts as 0: it ranks no
    concept, and skipping it would reward a model for collapsing on its hard dimensions.
    """
    from scipy import stats

    values = []
    for _, part in ratings.groupby(["language", "dimension"]):
        part = part.dropna(subset=[column, "human"])
        if len(part) < 3 or part["human"].nunique() < 2:
            continue  # nothing to rank against
        values.append(stats.spearmanr(part[column], part["human"]).statistic if part[column].nunique() > 1 else 0.0)
    return float(np.mean(values)) if values else float("nan")

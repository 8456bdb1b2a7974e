"""Hidden-state embeddings of concepts: every layer, pooled over the concept's own tokens.

Causal LMs read the concept after a neutral prefix (``Concept:``) so that the concept
sits in the same context for every word; encoders read the concept alone. Pooling is the
mean over the concept's tokens and the last of them, in float32, per layer (layer 0 is the
embedding output, layer L the last block).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from embodiment.cpu_linears import with_inference_linears
from embodiment.prompts import EMBEDDING_PREFIX

POOLINGS = ("mean", "last")


@dataclass
class Embeddings:
    """Pooled hidden states.

    Attributes:
        concepts: the concepts, row order of every array.
        layers: layer indices kept.
        vectors: pooling -> (n_layers, n_concepts, hidden) float32.
    """

    concepts: list[str]
    layers: list[int]
    vectors: dict[str, np.ndarray]

    def layer(self, layer: int, pooling: str = "mean") -> np.ndarray:
        """(n_concepts, hidden) vectors of one layer."""
        return self.vectors[pooling][self.layers.index(layer)]

    def to_frame(self) -> pd.DataFrame:
        """Long table: concept, layer, pooling, vector (list of float32) -- the Parquet layout."""
        rows = []
        for pooling, arr in self.vectors.items():
            for li, layer in enumerate(self.layers):
                for ci, concept in enumerate(self.concepts):
                    rows.append((concept, layer, pooling, arr[li, ci]))
        return pd.DataFrame(rows, columns=["concept", "layer", "pooling", "vector"])


def hidden_states_only(model) -> dict:
    """Forward kwargs that spare a causal LM its vocabulary head where only hidden states are read.

    The head (hidden x vocabulary) is about a fifth of SmolLM2-135M's forward FLOPs, and its
    fp32 logits are the largest activation of the pass; ``logits_to_keep=1`` runs it on one
    position instead of all. Hidden states are unchanged (tested). Encoders have no head.

    Args:
        model: a causal LM or an encoder, plain or PEFT-wrapped.

    Returns:
        ``{"logits_to_keep": 1}`` for a model with an output head, else ``{}``.
    """
    return {"logits_to_keep": 1} if model.get_output_embeddings() is not None else {}


def _spans(tokenizer, concepts: Sequence[str], kind: str) -> tuple[list[list[int]], list[tuple[int, int]]]:
    seqs, spans = [], []
    for c in concepts:
        if kind == "causal":
            prefix = tokenizer.encode(EMBEDDING_PREFIX, add_special_tokens=False)
            own = tokenizer.encode(" " + c, add_special_tokens=False)
            seqs.append(prefix + own)
            spans.append((len(prefix), len(prefix) + len(own)))
        else:
            enc = tokenizer(c, add_special_tokens=True, return_special_tokens_mask=True)
            special = enc["special_tokens_mask"]
            inner = [i for i, s in enumerate(special) if not s]
            seqs.append(enc["input_ids"])
            spans.append((inner[0], inner[-1] + 1))
    return seqs, spans


@with_inference_linears
@torch.no_grad()
def extract_embeddings(
    model,
    tokenizer,
    concepts: Sequence[str],
    *,
    kind: str = "causal",
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    by_length: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Embeddings:
    """Pooled hidden states of each concept at every (or the chosen) layer.

    Args:
        model: a causal LM or an encoder (PEFT-wrapped or plain).
        tokenizer: its tokenizer.
        concepts: the concepts.
        kind: ``causal`` (neutral prefix) or ``encoder`` (concept alone, specials excluded).
        layers: layer indices to keep (negative counts from the end); default all.
        batch_size: concepts per forward pass.
        by_length: batch concepts of similar token length together (1 to 5+ tokens:
            padding is computed like real tokens); vectors come back in the order given.
        progress: called with the number of concepts finished after each batch.
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dev = next(model.parameters()).device
    seqs, spans = _spans(tokenizer, concepts, kind)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i])) if by_length else list(range(len(seqs)))
    seqs, spans = [seqs[i] for i in order], [spans[i] for i in order]
    no_head = hidden_states_only(model)
    pooled: dict[str, list[np.ndarray]] = {p: [] for p in POOLINGS}
    chosen: list[int] | None = None
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start : start + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(chunk):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        out = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=True, **no_head)
        hidden = torch.stack(out.hidden_states).float()  # (L+1, b, t, h)
        if chosen is None:
            total = hidden.shape[0]
            chosen = list(range(total)) if layers is None else sorted({layer % total for layer in layers})
        hidden = hidden[chosen]
        span_mask = torch.zeros((len(chunk), width), device=hidden.device)
        last_idx = torch.empty(len(chunk), dtype=torch.long, device=hidden.device)
        for i, (a, b) in enumerate(spans[start : start + batch_size]):
            span_mask[i, a:b] = 1.0
            last_idx[i] = b - 1
        mean = (hidden * span_mask[None, :, :, None]).sum(2) / span_mask.sum(1)[None, :, None]
        last = hidden[:, torch.arange(len(chunk)), last_idx]
        pooled["mean"].append(mean.cpu().numpy().astype(np.float32))
        pooled["last"].append(last.cpu().numpy().astype(np.float32))
        if progress:
            progress(len(chunk))
    given = np.argsort(order)  # back to the order of ``concepts``
    return Embeddings(
        list(concepts), list(chosen or []), {p: np.concatenate(v, axis=1)[:, given] for p, v in pooled.items()}
    )

"""Scoring a causal LM: ratings from one forward pass, generate-and-parse, multiple choice.

Ratings: the next-token distribution after the prompt is read at the answer tokens
"0".."5"; the rating is their probability-weighted mean after renormalising over the six
digits (``digit_mass`` keeps how much probability the digits had in the first place).
The prompt part shared by all concepts of a (dimension, language) is run once and its
KV cache reused for every batch of concepts; right padding with an attention mask keeps
padded rows identical to unpadded ones.

Decimal targets: a human mean such as 2.4 has no single answer token. Training uses a
soft target over the digits whose expectation equals the mean -- 2.4 puts 0.6 on "2" and
0.4 on "3" -- so the expected rating the scorer reads is exactly what was trained.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
import weakref
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from embodiment.cpu_linears import with_inference_linears
from embodiment.padding import left_pad as _pad, positions as _positions
from embodiment.prompts import rating_prompt

DIGITS = tuple(str(k) for k in range(6))


def digit_token_ids(tokenizer) -> list[int]:
    """Token ids of the answers "0".."5" (each must be a single token)."""
    ids = []
    for d in DIGITS:
        enc = tokenizer.encode(d, add_special_tokens=False)
        if len(enc) != 1:
            raise ValueError(
                f"the tokenizer splits the digit {d!r} into {len(enc)} tokens; ratings need one token per digit"
            )
        ids.append(enc[0])
    return ids


def soft_digit_target(rating: float) -> np.ndarray:
    """The training distribution over "0".."5" whose expectation is ``rating`` (floor/ceil split)."""
    rating = float(np.clip(rating, 0.0, 5.0))
    lo = int(math.floor(rating))
    q = np.zeros(6)
    if lo >= 5:
        q[5] = 1.0
    else:
        q[lo] = 1.0 - (rating - lo)
        q[lo + 1] = rating - lo
    return q


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def cache_argument(model: torch.nn.Module) -> str:
    """The forward keyword of the KV cache: ``cache`` from transformers 5.2x, before that
    ``past_key_values`` (PEFT wrappers forward either through **kwargs)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def returned_cache(out):
    return out.cache if hasattr(out, "cache") else out.past_key_values


@torch.no_grad()
def _last_logits_plain(model, seqs: list[list[int]], pad_id: int) -> torch.Tensor:
    ids, mask = _pad(seqs, pad_id)
    dev = _device(model)
    out = model(
        input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=_positions(mask).to(dev), logits_to_keep=1
    )
    return out.logits[:, -1].float()


def _prefix_kv(model, prefix_ids: list[int]):
    """The one-row KV cache of ``prefix_ids`` (the LM head runs on one position only)."""
    out = model(input_ids=torch.tensor([prefix_ids], device=_device(model)), use_cache=True, logits_to_keep=1)
    return returned_cache(out)


def _weights_state(model: torch.nn.Module) -> tuple[int, int, bool]:
    """Changes whenever a parameter is updated in place (its version counter) or replaced
    (its storage, as ``.to()`` does), or the mode changes (dropout): what a cached prefix
    KV must be checked against."""
    params = list(model.parameters())
    return sum(p._version for p in params), sum(p.data_ptr() for p in params), model.training


class PrefixStore:
    """Prompt-prefix KV caches kept across :func:`score_ratings` calls on one model.

    A Ray Data scorer sees the concepts in blocks; without a store every block would run
    each dimension's ~60-token prefix again (a measurable share of the scoring time:
    docs/performance.md). Only the one-row cache is kept (a few MB per dimension); batches
    expand their own copy. The store belongs to one model and forgets everything when
    that model's weights change, so a stale prefix is never scored against.
    """

    def __init__(self) -> None:
        self._model_ref = None
        self._state: tuple[int, int, bool] | None = None
        self._caches: dict[tuple[int, ...], object] = {}

    def __len__(self) -> int:
        return len(self._caches)

    def get(self, model, prefix_ids: list[int]):
        """The one-row KV cache of ``prefix_ids`` under ``model``, computed once."""
        state = _weights_state(model)
        if self._model_ref is None or self._model_ref() is not model or state != self._state:
            self._model_ref, self._state, self._caches = weakref.ref(model), state, {}
        key = tuple(prefix_ids)
        if key not in self._caches:
            self._caches[key] = _prefix_kv(model, prefix_ids)
        return self._caches[key]


class _PrefixCache:
    """The KV cache of a prompt prefix shared by a batch of suffixes.

    The one-row cache is expanded to each batch size once and kept; after every forward
    the appended suffix entries are cropped off again, so no batch pays for a deep copy.
    The one-row cache itself is never modified (it may belong to a :class:`PrefixStore`).
    """

    def __init__(self, model, prefix_ids: list[int], store: PrefixStore | None = None):
        self.one = store.get(model, prefix_ids) if store is not None else _prefix_kv(model, prefix_ids)
        self.length = len(prefix_ids)
        self.expanded: dict[int, object] = {}

    def for_batch(self, size: int):
        if size not in self.expanded:
            cache = copy.deepcopy(self.one)
            cache.batch_repeat_interleave(size)
            self.expanded[size] = cache
        return self.expanded[size]

    def restore(self, size: int) -> None:
        cache = self.expanded[size]
        added = cache.get_seq_length() - self.length
        if added > 0:
            cache.crop(-added)  # a negative count removes tokens in every transformers 5.x


def _last_logits_reused(model, prefix: _PrefixCache, suffixes: list[list[int]], pad_id: int) -> torch.Tensor:
    ids, mask = _pad(suffixes, pad_id)
    dev = _device(model)
    b = ids.shape[0]
    full_mask = torch.cat([torch.ones((b, prefix.length), dtype=torch.long), mask], dim=1).to(dev)
    try:
        out = model(
            input_ids=ids.to(dev),
            attention_mask=full_mask,
            position_ids=_positions(mask, prefix.length).to(dev),
            use_cache=True,
            logits_to_keep=1,
            **{cache_argument(model): prefix.for_batch(b)},
        )
    finally:
        prefix.restore(b)
    return out.logits[:, -1].float()


def packed_batch(suffixes: list[list[int]], prefix_length: int, per_row: int, pad_id: int):
    """Several suffixes of one prefix packed into each row, each seeing the prefix and itself.

    Row r holds suffixes ``r * per_row ...`` back to back; a 4-D boolean mask lets each
    suffix's tokens attend to the cached prefix (every row's first ``prefix_length`` keys)
    and causally to its own earlier tokens only, and position ids restart at
    ``prefix_length`` for each, so every suffix is scored exactly as if it were alone after
    the prefix. Packing multiplies the tokens each cached-prefix row serves: the prefix's
    keys and values are copied per row, not per suffix. Padding columns attend to the prefix
    only (a fully masked row would give NaN) and are never read.

    Returns:
        (input_ids, position_ids, mask, last): ids and positions (rows, width), the mask
        (rows, 1, width, prefix_length + width), and each suffix's last (row, column).
    """
    rows = [suffixes[s : s + per_row] for s in range(0, len(suffixes), per_row)]
    width = max(sum(len(x) for x in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.full((len(rows), width), prefix_length, dtype=torch.long)
    mask = torch.zeros((len(rows), 1, width, prefix_length + width), dtype=torch.bool)
    mask[..., :prefix_length] = True
    last = []
    for r, row in enumerate(rows):
        col = 0
        for x in row:
            n = len(x)
            ids[r, col : col + n] = torch.tensor(x, dtype=torch.long)
            pos[r, col : col + n] = torch.arange(prefix_length, prefix_length + n)
            keys = slice(prefix_length + col, prefix_length + col + n)
            mask[r, 0, col : col + n, keys] = torch.ones((n, n), dtype=torch.bool).tril()
            last.append((r, col + n - 1))
            col += n
    return ids, pos, mask, last


#: suffixes packed into a row by default: fewer rows to copy the prefix's keys and values
#: into, and no suffix padded (docs/performance.md has the measurement behind 8)
PACKED_SUFFIXES = 8

#: attention implementations that take a custom 4-D mask (flash kernels do not)
PACKABLE_ATTENTION = ("sdpa", "eager")


def can_pack(model) -> bool:
    """Whether ``model``'s attention takes the custom masks of :func:`packed_batch`."""
    return getattr(model.config, "_attn_implementation", None) in PACKABLE_ATTENTION


def _last_logits_packed(
    model, prefix: _PrefixCache, suffixes: list[list[int]], pad_id: int, per_row: int
) -> torch.Tensor:
    ids, pos, allowed, last = packed_batch(suffixes, prefix.length, per_row, pad_id)
    dev = _device(model)
    dtype = next(model.parameters()).dtype
    # additive form: what eager attention adds to its scores, and what SDPA takes as well
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    # the LM head runs only on the columns where some suffix ends
    columns = sorted({c for _, c in last})
    where = {c: j for j, c in enumerate(columns)}
    try:
        out = model(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            position_ids=pos.to(dev),
            use_cache=True,
            logits_to_keep=torch.tensor(columns, dtype=torch.long, device=dev),
            **{cache_argument(model): prefix.for_batch(ids.shape[0])},
        )
    finally:
        prefix.restore(ids.shape[0])
    rows = torch.tensor([r for r, _ in last], device=dev)
    cols = torch.tensor([where[c] for _, c in last], device=dev)
    return out.logits[rows, cols].float()


@with_inference_linears
@torch.no_grad()
def score_ratings(
    model,
    tokenizer,
    concepts: Sequence[str],
    dimensions: Sequence[str],
    language: str = "en",
    *,
    batch_size: int = 32,
    reuse_prefix: bool = True,
    suffixes_per_row: int = PACKED_SUFFIXES,
    prefix_store: PrefixStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Expected ratings of every (concept, dimension) from one forward pass each.

    Args:
        model: a causal LM (plain or PEFT-wrapped), in eval mode.
        tokenizer: its tokenizer.
        concepts: concept labels.
        dimensions: dimension names (registry names or aliases).
        language: prompt language, ``en`` or ``nl``.
        batch_size: concepts per forward pass.
        reuse_prefix: run the shared prompt prefix once and reuse its KV cache.
        suffixes_per_row: with ``reuse_prefix``, concepts' prompt suffixes packed into one
            row of each forward pass (:func:`packed_batch`; attention implementations that
            take no custom mask fall back to one); 1: a row per concept.
        prefix_store: keeps prefix KV caches across calls (a caller scoring many blocks
            of concepts with one model); without it each call runs its prefixes again.
        progress: called with the number of prompts finished after each batch.

    Returns:
        One row per (concept, dimension): concept, dimension, language, expected, p0..p5
        (renormalised over the digits), digit_mass (their raw total probability).
    """
    digit_ids = digit_token_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    frames = []
    for dim in dimensions:
        split0 = rating_prompt(tokenizer, concepts[0], dim, language)
        prefix_ids = _encode(tokenizer, split0.prefix)
        suffixes = [_encode(tokenizer, rating_prompt(tokenizer, c, dim, language).suffix) for c in concepts]
        cache = _PrefixCache(model, prefix_ids, prefix_store) if reuse_prefix else None
        # Batches of similar length: padding columns are computed like real tokens, and
        # multi-token expressions next to one-token words would pad every short row.
        order = sorted(range(len(concepts)), key=lambda i: len(suffixes[i]))
        probs = np.empty((len(concepts), 6))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            chunk = [suffixes[i] for i in rows]
            if reuse_prefix and suffixes_per_row > 1 and can_pack(model):
                logits = _last_logits_packed(model, cache, chunk, pad, suffixes_per_row)
            elif reuse_prefix:
                logits = _last_logits_reused(model, cache, chunk, pad)
            else:
                logits = _last_logits_plain(model, [prefix_ids + s for s in chunk], pad)
            probs[rows] = torch.softmax(logits, dim=-1)[:, digit_ids].double().cpu().numpy()
            if progress:
                progress(len(chunk))
        mass = probs.sum(axis=1)
        norm = probs / mass[:, None]
        frame = pd.DataFrame(
            {"concept": list(concepts), "dimension": dim, "language": language, "expected": norm @ np.arange(6)}
        )
        for d in range(6):
            frame[f"p{d}"] = norm[:, d]
        frame["digit_mass"] = mass
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


_NUMBER = re.compile(r"(?<![\d.])(\d+(?:[.,]\d+)?)")


def parse_rating(text: str) -> float:
    """The first number in a generated answer, clipped to 0-5; NaN if there is none."""
    match = _NUMBER.search(text)
    if not match:
        return float("nan")
    return float(np.clip(float(match.group(1).replace(",", ".")), 0.0, 5.0))


@torch.no_grad()
def generate_ratings(
    model,
    tokenizer,
    concepts: Sequence[str],
    dimensions: Sequence[str],
    language: str = "en",
    *,
    batch_size: int = 32,
    max_new_tokens: int = 6,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The study's way: greedy-generate an answer and parse the number in it.

    Kept as the study ran it, on stock torch kernels: it is the reference the scorer is
    measured against (``bench/bench_scoring.py`` also times it inside
    :func:`embodiment.cpu_linears.inference_linears`).

    Returns:
        One row per (concept, dimension): concept, dimension, language, parsed, text.
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dev = _device(model)
    rows = []
    for dim in dimensions:
        seqs = []
        for c in concepts:
            sp = rating_prompt(tokenizer, c, dim, language)
            seqs.append(_encode(tokenizer, sp.prefix) + _encode(tokenizer, sp.suffix))
        for start in range(0, len(seqs), batch_size):
            chunk = seqs[start : start + batch_size]
            width = max(len(s) for s in chunk)  # left padding for generation
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, s in enumerate(chunk):
                ids[i, width - len(s) :] = torch.tensor(s)
                mask[i, width - len(s) :] = 1
            out = model.generate(
                input_ids=ids.to(dev),
                attention_mask=mask.to(dev),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
            texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
            for c, text in zip(concepts[start : start + batch_size], texts):
                rows.append(
                    {"concept": c, "dimension": dim, "language": language, "parsed": parse_rating(text), "text": text}
                )
            if progress:
                progress(len(chunk))
    return pd.DataFrame(rows)

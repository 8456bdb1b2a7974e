"""Multiple-choice scoring: per-option log-likelihoods of a continuation given a context
(lm-evaluation-harness's split rule), and the colour questions' chosen answers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from embodiment.cpu_linears import with_inference_linears
from embodiment.padding import right_pad as _pad_right
from embodiment.prompts import mcq_context
from embodiment.scoring import _device, _encode


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's split: trailing spaces of the context move to the
    continuation; the whole is tokenized and the context's tokens cut off the front."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = _encode(tokenizer, context + continuation)
    ctx = _encode(tokenizer, context)
    return whole[: len(ctx)], whole[len(ctx) :]


def _predicting(ctx: list[int], cont: list[int]) -> range:
    """The positions whose logits predict the continuation's tokens (next-token shift)."""
    return range(len(ctx) - 1, len(ctx) + len(cont) - 1)


@with_inference_linears
@torch.no_grad()
def loglikelihoods(
    model, tokenizer, pairs: Sequence[tuple[str, str]], *, batch_size: int = 16, by_length: bool = True
) -> list[tuple[float, int]]:
    """Sum of log-probabilities of each continuation given its context, and its token count.

    Args:
        model: a causal LM (plain or PEFT-wrapped).
        tokenizer: its tokenizer.
        pairs: (context, continuation) strings.
        batch_size: distinct inputs per forward pass (pairs whose tokens but the last are
            the same share one).
        by_length: batch sequences of similar length together (longest first, as
            lm-evaluation-harness does): padding is computed like real tokens, and
            multiple-choice questions differ in length by up to 3x. Results come back in
            the order of ``pairs`` either way.

    Returns:
        One (log-likelihood, continuation token count) per pair, in the order given.
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dev = _device(model)
    encoded = [encode_pair(tokenizer, c, x) for c, x in pairs]
    # The model reads a pair's tokens but its last one; pairs with the same input (a
    # multiple-choice question's one-token options " A".." D" after one context) need one
    # forward pass between them, whose logits every such pair reads its own targets from.
    inputs: dict[tuple[int, ...], list[int]] = {}
    for i, (ctx, cont) in enumerate(encoded):
        inputs.setdefault(tuple(ctx + cont[:-1]), []).append(i)
    order = list(inputs)
    if by_length:
        order.sort(key=lambda seq: -len(seq))
    results: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = _pad_right([list(seq) for seq in chunk], pad)
        readers = [(row, i) for row, seq in enumerate(chunk) for i in inputs[seq]]
        # The head runs only where some pair's continuation is predicted (a handful of
        # positions after prompts of ~100 tokens), not on every position.
        needed = sorted({p for _, i in readers for p in _predicting(*encoded[i])})
        column = {p: j for j, p in enumerate(needed)}
        logits = model(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            logits_to_keep=torch.tensor(needed, dtype=torch.long, device=dev),
        ).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for row, i in readers:
            ctx, cont = encoded[i]
            columns = torch.tensor([column[p] for p in _predicting(ctx, cont)], dtype=torch.long, device=dev)
            targets = torch.tensor(cont, device=dev)
            results[i] = (float(logp[row, columns, targets].sum()), len(cont))
    return results


def score_mcq(model, tokenizer, items: Sequence[dict], *, batch_size: int = 16, by_length: bool = True) -> pd.DataFrame:
    """Multiple choice by per-option log-likelihood of `` A``..`` D`` after the question.

    Args:
        items: dicts with ``index``, ``question``, ``options`` ({"A": ...}), ``correct_option``.
        batch_size: sequences per forward pass.
        by_length: batch sequences of similar length (see :func:`loglikelihoods`).

    Returns:
        One row per (item, option): index, option, loglik (raw sum), loglik_per_token,
        loglik_per_char, prob (softmax of raw log-likelihoods over the options), chosen,
        correct_option, is_correct (the item's argmax equals the key).
    """
    pairs, keys = [], []
    for item in items:
        ctx = mcq_context(tokenizer, item["question"], item["options"])
        for letter in sorted(item["options"]):
            pairs.append((ctx, " " + letter))
            keys.append((item, letter))
    scores = loglikelihoods(model, tokenizer, pairs, batch_size=batch_size, by_length=by_length)
    frame = pd.DataFrame(
        {
            "index": [k[0]["index"] for k in keys],
            "option": [k[1] for k in keys],
            "loglik": [s for s, _ in scores],
            "n_tokens": [n for _, n in scores],
            "correct_option": [k[0]["correct_option"] for k in keys],
        }
    )
    frame["loglik_per_token"] = frame["loglik"] / frame["n_tokens"]
    frame["loglik_per_char"] = frame["loglik"] / frame["option"].map(lambda o: len(" " + o))
    grouped = frame.groupby("index", sort=False)["loglik"]
    frame["prob"] = np.exp(frame["loglik"] - grouped.transform("max"))
    frame["prob"] /= frame.groupby("index", sort=False)["prob"].transform("sum")
    chosen = frame.loc[grouped.idxmax(), ["index", "option"]].set_index("index")["option"]
    frame["chosen"] = frame["index"].map(chosen)
    frame["is_correct"] = frame["chosen"] == frame["correct_option"]
    return frame

"""How much of the norms a linear read-out of the rating prompt's answer state recovers.

The rating format reads digits from the LM head at the answer position, so a linear map
of the final hidden state there (or, ``--feature mlp``, of the last block's MLP
activations) is what a head-only change could use. Fits ridge (CV on training words) on
the frozen base model's states of training words; scores validation words (training-split
words never fitted on). One read-out shared by every dimension (what one LM head can do)
and one per dimension (an upper bound needing dimension-specific weights).

Measured 2026-12-02 (SmolLM2-135M, 800 training / 150 validation words, seed 0): final
state, shared: mean Spearman about 0.18, RSA 0.04; per dimension: 0.51 / 0.39. Last MLP's
activations, shared: 0.28 / 0.15 (Spearman then taken on ordinal ranks; ties are rare). So initialising the head from a ridge fit (LP-FT) cannot
carry the dimension-specific read-out: that needs the layers below to change.

Usage: python bench/answer_state_readout.py [--train-words 800] [--val-words 150] [--feature head|mlp]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from embodiment.metrics import rsa
from embodiment.models import load_model
from embodiment.norms import load_norms
from embodiment.probe import fit_ridge
from embodiment.prompts import rating_prompt
from embodiment.scoring import score_ratings
from embodiment.splits import draw_sides


def answer_states(model, tokenizer, concepts, dims, batch_size=32, feature="head") -> np.ndarray:
    """(concepts, dims, width): the LM head's input (or the last MLP's activations) at each
    rating prompt's answer position, captured by hooks during :func:`score_ratings` (whose
    batch order, by suffix length within each dimension after one prefix pass, is replayed)."""
    captured: list[torch.Tensor] = []
    mlp: list[torch.Tensor] = []
    hook = model.lm_head.register_forward_hook(lambda m, inp, out: captured.append(inp[0][:, -1].detach().float()))
    hook2 = model.model.layers[-1].mlp.down_proj.register_forward_hook(
        lambda m, inp, out: mlp.append(inp[0][:, -1].detach().float())
    )
    try:
        score_ratings(model, tokenizer, concepts, dims, "en", batch_size=batch_size, reuse_prefix=True)
    finally:
        hook.remove()
        hook2.remove()
    if feature == "mlp":
        captured = mlp
    hidden = captured[0].shape[-1]
    out = np.empty((len(concepts), len(dims), hidden), dtype=np.float32)
    k = 0
    for j, dim in enumerate(dims):
        suffixes = [
            tokenizer.encode(rating_prompt(tokenizer, c, dim, "en").suffix, add_special_tokens=False) for c in concepts
        ]
        order = sorted(range(len(concepts)), key=lambda i: len(suffixes[i]))
        # the prefix pass runs the head once (one row) before the batches
        k += 1
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows, j] = captured[k].numpy()
            k += 1
    assert k == len(captured), (k, len(captured))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train-words", type=int, default=800)
    p.add_argument("--val-words", type=int, default=150)
    p.add_argument("--feature", default="head")
    args = p.parse_args()
    norms = load_norms("embedded")
    train_words, val_words, _ = draw_sides(
        norms.words, test_fraction=0.4, seed=0, n_train=args.train_words, n_validation=args.val_words
    )
    tr, va = norms.select(train_words), norms.select(val_words)
    lm = load_model("smollm2-135m")
    model, tok = lm.model.eval(), lm.tokenizer
    t = time.perf_counter()
    xtr = answer_states(model, tok, tr.words, tr.dimensions, feature=args.feature)
    xva = answer_states(model, tok, va.words, va.dimensions, feature=args.feature)
    print(f"states: {time.perf_counter() - t:.0f} s", flush=True)
    nd = len(tr.dimensions)
    # one read-out for every dimension (what one head can do)
    probe = fit_ridge(xtr.reshape(-1, xtr.shape[-1]), tr.means.reshape(-1, 1))
    pred = probe.predict(xva.reshape(-1, xva.shape[-1])).reshape(len(va.words), nd)
    sp = [float(spearmanr(pred[:, j], va.means[:, j]).statistic) for j in range(nd)]
    print(
        "shared read-out: val mean Spearman %.3f RSA %.3f alpha %s"
        % (np.mean(sp), rsa(pred, va.means).value, probe.alpha),
        sp,
    )
    # one read-out per dimension (upper bound for the shared one)
    pred2 = np.empty_like(pred)
    for j in range(nd):
        pj = fit_ridge(xtr[:, j], tr.means[:, j : j + 1])
        pred2[:, j] = pj.predict(xva[:, j]).ravel()
    sp2 = [float(spearmanr(pred2[:, j], va.means[:, j]).statistic) for j in range(nd)]
    print("per-dimension read-out: val mean Spearman %.3f RSA %.3f" % (np.mean(sp2), rsa(pred2, va.means).value), sp2)


if __name__ == "__main__":
    main()

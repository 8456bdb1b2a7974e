"""GPU tests (skipped without CUDA): scoring, embeddings and DeepSpeed training on the GPU
give what the CPU path gives, and bf16 training still learns."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from scipy import stats

from embodiment.embeddings import extract_embeddings
from embodiment.formats import TaskData
from embodiment.models import tiny_causal_lm, tiny_tokenizer
from embodiment.norms import Norms
from embodiment.scoring import score_ratings
from embodiment.training import TrainConfig, train, verify_adapter

CONCEPTS = ["apple", "thunder", "velvet", "lemon", "kick", "fog", "whisper", "rose"]


def _rule_norms(rng, n):
    words = list(
        dict.fromkeys(
            rng.choice(list("abcdef")) + "".join(rng.choice(list(string.ascii_lowercase), 3)) for _ in range(n)
        )
    )
    return Norms(words, ["Visual"], np.array([["abcdef".index(w[0])] for w in words], dtype=float), "en", "synthetic")


def test_cuda_scores_equal_cpu_scores():
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=3)
    cpu = score_ratings(model, tok, CONCEPTS, ["Visual", "Haptic"], batch_size=3)
    gpu = score_ratings(model.to("cuda"), tok, CONCEPTS, ["Visual", "Haptic"], batch_size=3)
    cols = ["expected", "digit_mass"] + [f"p{d}" for d in range(6)]
    np.testing.assert_allclose(gpu[cols].to_numpy(), cpu[cols].to_numpy(), atol=1e-4)


def test_cuda_bf16_prefix_reuse_matches_plain():
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=4).to("cuda", torch.bfloat16)
    reused = score_ratings(model, tok, CONCEPTS, ["Visual"], batch_size=4, reuse_prefix=True)
    plain = score_ratings(model, tok, CONCEPTS, ["Visual"], batch_size=4, reuse_prefix=False)
    np.testing.assert_allclose(reused["expected"], plain["expected"], atol=2e-2)


def test_cuda_embeddings_equal_cpu_embeddings():
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=5)
    cpu = extract_embeddings(model, tok, CONCEPTS, layers=[0, 2], batch_size=4)
    gpu = extract_embeddings(model.to("cuda"), tok, CONCEPTS, layers=[0, 2], batch_size=4)
    for layer in (0, 2):
        np.testing.assert_allclose(gpu.layer(layer), cpu.layer(layer), atol=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "amp_bf16"])
@pytest.mark.parametrize("lora", [False, True])
def test_deepspeed_bf16_training_on_cuda_learns(tmp_path, lora, precision):
    rng = np.random.default_rng(0)
    norms = _rule_norms(rng, 300)
    test = _rule_norms(np.random.default_rng(1), 80)
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, hidden=64, layers=2).to("cuda")
    cfg = TrainConfig(
        format="rating",
        lora=lora,
        lora_rank=8,
        learning_rate=3e-3 if not lora else 1e-2,
        steps=300,
        batch_size=16,
        engine="deepspeed",
        precision=precision,
    )
    result = train(cfg, model, tok, TaskData(norms={"en": norms}), tmp_path)
    assert result.engine == "deepspeed"
    if lora:  # a rank-8 adapter on a random 2-layer base learns slowly: the loss must fall
        assert np.mean(result.losses[-10:]) < 0.97 * np.mean(result.losses[:10])
        assert verify_adapter(result.adapter_dir) > 0
        return
    assert np.mean(result.losses[-10:]) < 0.5 * np.mean(result.losses[:10])
    model.eval()
    scored = score_ratings(model, tok, test.words, ["Visual"], batch_size=64)
    assert stats.spearmanr(scored["expected"], test.column("Visual")).statistic > 0.6

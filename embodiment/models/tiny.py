"""Tiny random models and a character tokenizer, for fast tests with no downloads."""

from __future__ import annotations

import string

import torch

_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]
_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer():
    """A character-level fast tokenizer (printable ASCII + specials) with a chat template.

    Every digit is its own token, as in the real models' vocabularies.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\x0b\x0c"] + ["é", "ë", "ï", "ö", "ü"]
    vocab = {tok: i for i, tok in enumerate(_SPECIALS + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tok.chat_template = _CHAT_TEMPLATE
    tok.padding_side = "right"
    return tok


def tiny_causal_lm(tokenizer=None, *, hidden: int = 48, layers: int = 2, heads: int = 4, seed: int = 0):
    """A randomly initialised Llama-architecture causal LM sized for unit tests (~100k params)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config)
    model.eval()
    return model


def save_tiny_model(path, **kwargs) -> str:
    """Save a tiny random model with its tokenizer to ``path`` (a local model directory).

    Args:
        path: Target directory (created).
        **kwargs: Passed to :func:`tiny_causal_lm` (hidden, layers, heads, seed).

    Returns:
        The directory as a string, usable wherever a model reference is accepted.
    """
    tokenizer = tiny_tokenizer()
    model = tiny_causal_lm(tokenizer, **kwargs)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    return str(path)

"""The vocabulary head runs only where its logits are read, and nothing read changes:
continuation losses and their gradients, pooled hidden states and concept embeddings all
equal what the full forward pass (head on every position) gives."""

import numpy as np
import pytest
import torch

from embodiment.embeddings import extract_embeddings, hidden_states_only
from embodiment.formats.base import concept_span_batch, continuation_batch, continuation_loss, pooled_hidden
from embodiment.models import tiny_causal_lm, tiny_tokenizer
from embodiment.prompts import EMBEDDING_PREFIX

CONCEPTS = ["apple", "thunder storm", "x", "a cappella"]


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer()
    return tiny_causal_lm(tok, layers=3, seed=5), tok


def _full_logits_loss(model, batch):
    """The oracle: logits on every position, then the shifted cross-entropy."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1), ignore_index=-100
    )


def test_continuation_loss_and_gradients_equal_the_full_head(tiny):
    model, tok = tiny
    enc = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    # prompts of different lengths, one- and three-token continuations: the rows predict
    # at different positions, and padding follows the short rows
    pairs = [
        (enc("Which colour is a ripe banana? Answer:"), enc(" B")),
        (enc("Pick:"), enc(" yellow and green")),
        (enc("The sky on a clear day is"), enc(" A")),
    ]
    batch = continuation_batch(pairs, pad=0)
    assert (batch["labels"][:, 1:] != -100).any(0).sum() < batch["labels"].shape[1] - 1  # some positions skipped

    model.zero_grad()
    got = continuation_loss(model, batch)
    got.backward()
    got_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    want = _full_logits_loss(model, batch)
    want.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(got_grads[name], p.grad, atol=1e-6, rtol=1e-5, msg=name)
    model.zero_grad()


def test_pooled_hidden_equals_the_full_forward(tiny):
    model, tok = tiny
    batch = concept_span_batch(tok, CONCEPTS)
    with torch.no_grad():
        got = pooled_hidden(model, batch["input_ids"], batch["attention_mask"], batch["span_mask"])
        last = (
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
            .hidden_states[-1]
            .float()
        )
    w = batch["span_mask"].float()
    want = (last * w[..., None]).sum(1) / w.sum(1, keepdim=True)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_embeddings_of_every_layer_equal_the_full_forward(tiny):
    model, tok = tiny
    got = extract_embeddings(model, tok, CONCEPTS, batch_size=4)
    for i, concept in enumerate(CONCEPTS):  # oracle: one unpadded pass per concept, head on every position
        prefix = tok.encode(EMBEDDING_PREFIX, add_special_tokens=False)
        own = tok.encode(" " + concept, add_special_tokens=False)
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([prefix + own]), output_hidden_states=True).hidden_states
        for layer, h in enumerate(hidden):
            span = h[0, len(prefix) :].float().numpy()
            np.testing.assert_allclose(got.layer(layer)[i], span.mean(0), atol=1e-5)
            np.testing.assert_allclose(got.layer(layer, "last")[i], span[-1], atol=1e-5)


def test_hidden_states_only_spares_causal_heads_and_leaves_encoders_alone(tiny):
    from peft import LoraConfig, get_peft_model
    from transformers import BertConfig, BertModel

    model, _ = tiny
    assert hidden_states_only(model) == {"logits_to_keep": 1}
    wrapped = get_peft_model(tiny_causal_lm(tiny_tokenizer(), seed=1), LoraConfig(r=2, target_modules=["q_proj"]))
    assert hidden_states_only(wrapped) == {"logits_to_keep": 1}
    encoder = BertModel(
        BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    )
    assert hidden_states_only(encoder) == {}

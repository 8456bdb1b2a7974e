import copy

import numpy as np
import pandas as pd
import pytest
import torch

from embodiment.models import tiny_causal_lm, tiny_tokenizer
from embodiment.prompts import rating_prompt
from embodiment.choices import encode_pair, loglikelihoods, score_mcq
from embodiment.scoring import parse_rating, score_ratings, soft_digit_target

CONCEPTS = ["apple", "thunder", "a cappella", "idea", "x", "ice cream cone"]


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer()
    return tiny_causal_lm(tok, seed=3), tok


def _naive_expected(model, tok, concept, dim):
    """One unpadded forward pass per prompt, no cache: the oracle."""
    sp = rating_prompt(tok, concept, dim)
    ids = tok.encode(sp.prefix, add_special_tokens=False) + tok.encode(sp.suffix, add_special_tokens=False)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    p = torch.softmax(logits.double(), -1)[[tok.convert_tokens_to_ids(str(d)) for d in range(6)]].numpy()
    return float((p / p.sum()) @ np.arange(6)), float(p.sum())


def test_prefix_reuse_equals_plain_and_naive(tiny):
    model, tok = tiny
    reused = score_ratings(model, tok, CONCEPTS, ["Visual", "foot"], batch_size=4, reuse_prefix=True)
    plain = score_ratings(model, tok, CONCEPTS, ["Visual", "foot"], batch_size=4, reuse_prefix=False)
    cols = ["expected", "digit_mass"] + [f"p{d}" for d in range(6)]
    assert reused["concept"].tolist() == CONCEPTS * 2  # input order, though batches go by length
    assert np.allclose(reused[cols].to_numpy(), plain[cols].to_numpy(), atol=1e-4)
    for _, row in reused.iterrows():
        exp, mass = _naive_expected(model, tok, row["concept"], row["dimension"])
        assert row["expected"] == pytest.approx(exp, abs=1e-4)
        assert row["digit_mass"] == pytest.approx(mass, abs=1e-4)


@pytest.mark.parametrize("per_row,batch,attention", [(2, 4, "sdpa"), (3, 6, "sdpa"), (6, 6, "sdpa"), (4, 5, "eager")])
def test_packed_suffixes_equal_the_naive_oracle(tiny, per_row, batch, attention):
    from embodiment.scoring import can_pack

    model, tok = tiny
    if attention != model.config._attn_implementation:
        model = copy.deepcopy(model)
        model.set_attn_implementation(attention)
    assert can_pack(model)
    packed = score_ratings(model, tok, CONCEPTS, ["Visual", "foot"], batch_size=batch, suffixes_per_row=per_row)
    assert packed["concept"].tolist() == CONCEPTS * 2
    for _, row in packed.iterrows():
        exp, mass = _naive_expected(model, tok, row["concept"], row["dimension"])
        assert row["expected"] == pytest.approx(exp, abs=1e-5) and row["digit_mass"] == pytest.approx(mass, abs=1e-5)


def test_packed_suffixes_through_a_lora_adapter_equal_the_naive_oracle(tiny):
    """Packing is the default, so fine-tuned (PEFT-wrapped) models are scored through it."""
    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    wrapped = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    wrapped.eval()
    packed = score_ratings(wrapped, tok, CONCEPTS, ["Visual", "foot"], batch_size=6)
    base = score_ratings(model, tok, CONCEPTS, ["Visual", "foot"], batch_size=6)
    assert (packed["expected"] - base["expected"]).abs().max() > 1e-3  # the adapter changes the ratings
    for _, row in packed.iterrows():
        exp, mass = _naive_expected(wrapped, tok, row["concept"], row["dimension"])
        assert row["expected"] == pytest.approx(exp, abs=1e-5) and row["digit_mass"] == pytest.approx(mass, abs=1e-5)


def test_packed_batch_lets_each_suffix_see_the_prefix_and_itself_only():
    from embodiment.scoring import packed_batch

    ids, pos, mask, last = packed_batch([[7, 8], [9], [4, 5, 6]], prefix_length=3, per_row=2, pad_id=0)
    assert ids.tolist() == [[7, 8, 9], [4, 5, 6]] and pos.tolist() == [[3, 4, 3], [3, 4, 5]]
    assert last == [(0, 1), (0, 2), (1, 2)]
    expected_row0 = [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 1]]
    assert mask[0, 0].int().tolist() == expected_row0
    assert mask[1, 0].int().tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]


@pytest.mark.parametrize("reuse", [True, False])
def test_batch_size_does_not_change_scores(tiny, reuse):
    model, tok = tiny
    one = score_ratings(model, tok, CONCEPTS, ["Haptic"], batch_size=1, reuse_prefix=reuse)
    all_ = score_ratings(model, tok, CONCEPTS, ["Haptic"], batch_size=len(CONCEPTS), reuse_prefix=reuse)
    assert np.allclose(one["expected"], all_["expected"], atol=1e-4)


def test_probabilities_are_a_distribution(tiny):
    model, tok = tiny
    out = score_ratings(model, tok, CONCEPTS[:3], ["Visual"], language="nl")
    p = out[[f"p{d}" for d in range(6)]].to_numpy()
    assert np.allclose(p.sum(1), 1.0) and (out["digit_mass"] <= 1.0).all()
    assert np.allclose(out["expected"], p @ np.arange(6))


@pytest.mark.parametrize(
    "rating,expected", [(2.4, {2: 0.6, 3: 0.4}), (0.0, {0: 1.0}), (5.0, {5: 1.0}), (4.75, {4: 0.25, 5: 0.75})]
)
def test_soft_digit_target_has_the_rating_as_expectation(rating, expected):
    q = soft_digit_target(rating)
    assert q.sum() == pytest.approx(1.0) and q @ np.arange(6) == pytest.approx(rating)
    for k, v in expected.items():
        assert q[k] == pytest.approx(v)


@pytest.mark.parametrize(
    "text,value",
    [("3", 3.0), (" 2.5 out of 5", 2.5), ("I'd say 4", 4.0), ("7", 5.0), ("none", float("nan")), ("1,5", 1.5)],
)
def test_parse_rating(text, value):
    got = parse_rating(text)
    assert (np.isnan(got) and np.isnan(value)) or got == value


def test_encode_pair_moves_trailing_space(tiny):
    _, tok = tiny
    ctx, cont = encode_pair(tok, "Answer: ", "A")
    assert tok.decode(ctx) == "Answer:" and tok.decode(cont) == " A"


def test_loglikelihood_equals_naive_sum(tiny):
    model, tok = tiny
    pairs = [("The sky is", " blue"), ("Pick one:", " B"), ("x", " yz")]
    got = loglikelihoods(model, tok, pairs, batch_size=2)
    for (c, x), (ll, n) in zip(pairs, got):
        ctx, cont = encode_pair(tok, c, x)
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        ref = sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
        assert ll == pytest.approx(ref, abs=1e-4) and n == len(cont)


def test_loglikelihoods_batched_by_length_come_back_in_the_given_order(tiny):
    model, tok = tiny
    # short first: batching longest-first reorders every pair
    pairs = [
        ("x", " a"),
        ("y z", " e f g"),
        ("mid length context", " d"),
        ("another fairly long context here", " h"),
        ("A much longer context with many words in it", " b c"),
    ]
    by_length = loglikelihoods(model, tok, pairs, batch_size=2)
    as_given = loglikelihoods(model, tok, pairs, batch_size=2, by_length=False)
    for (c, x), (ll, n), (ll_given, n_given) in zip(pairs, by_length, as_given):
        ctx, cont = encode_pair(tok, c, x)
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([ctx + cont])).logits[0].double(), -1)
        ref = sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
        assert ll == pytest.approx(ref, abs=1e-4) and ll_given == pytest.approx(ref, abs=1e-4)
        assert n == n_given == len(cont)


def test_pairs_with_the_same_input_share_one_forward_pass_and_equal_the_naive_sum(tiny):
    model, tok = tiny
    contexts = ["Question one? Answer:", "A second, longer question here? Answer:"]
    pairs = [(c, f" {letter}") for c in contexts for letter in "ABCD"] + [("x", " yz"), ("x", " y")]
    rows = []
    handle = model.register_forward_hook(lambda _m, _a, out: rows.append(out.logits.shape[0]))
    try:
        got = loglikelihoods(model, tok, pairs, batch_size=16)
    finally:
        handle.remove()
    distinct = {tuple(c + x[:-1]) for c, x in (encode_pair(tok, *p) for p in pairs)}
    assert rows == [len(distinct)] and len(distinct) < len(pairs)  # one row per distinct input
    for (c, x), (ll, n) in zip(pairs, got):
        ctx, cont = encode_pair(tok, c, x)
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([ctx + cont])).logits[0].double(), -1)
        assert ll == pytest.approx(sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont)), abs=1e-4)
        assert n == len(cont)


def test_score_mcq_variants(tiny):
    model, tok = tiny
    items = [
        {
            "index": 1,
            "question": "Red plus blue?",
            "options": {"A": "purple", "B": "green", "C": "orange", "D": "cyan"},
            "correct_option": "A",
        },
        {
            "index": 2,
            "question": "Sky colour?",
            "options": {"A": "red", "B": "blue", "C": "black", "D": "brown"},
            "correct_option": "B",
        },
    ]
    out = score_mcq(model, tok, items)
    assert len(out) == 8
    assert np.allclose(out.groupby("index")["prob"].sum(), 1.0)
    for _, g in out.groupby("index"):
        assert g.loc[g["loglik"].idxmax(), "option"] == g["chosen"].iloc[0]
    assert {"loglik", "loglik_per_token", "loglik_per_char", "prob", "is_correct"} <= set(out.columns)


@pytest.mark.parametrize("language", ["en", "nl"])
def test_rating_prompt_is_the_chat_template_rendered_with_the_concept(tiny, language):
    """The frame rendered once per (dimension, language) and reused must equal rendering
    the whole prompt, concept included, every time."""
    from embodiment import dimensions
    from embodiment.prompts import RATING_TEMPLATES

    _, tok = tiny
    for concept in ("apple", "ice cream cone", "{concept}"):
        for dim in ("Visual", "Haptic"):
            content = RATING_TEMPLATES[language].format(
                description=dimensions.get(dim).description, concept=" " + concept
            )
            whole = tok.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
            sp = rating_prompt(tok, concept, dim, language)
            assert sp.prefix + sp.suffix == whole
            assert sp.suffix.startswith(" " + concept)


def test_prefix_store_reuses_prefixes_across_calls_and_forgets_them_when_weights_change(tiny):
    from embodiment.scoring import PrefixStore

    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    store = PrefixStore()
    halves = [
        score_ratings(model, tok, part, ["Visual", "foot"], batch_size=2, prefix_store=store)
        for part in (CONCEPTS[:3], CONCEPTS[3:])
    ]
    assert len(store) == 2  # one prefix per dimension, kept from the first call for the second
    whole = score_ratings(model, tok, CONCEPTS, ["Visual", "foot"], batch_size=2)
    joined = pd.concat(halves).sort_values(["dimension", "concept"]).reset_index(drop=True)
    whole = whole.sort_values(["dimension", "concept"]).reset_index(drop=True)
    assert np.allclose(joined["expected"], whole["expected"], atol=1e-5)
    # an optimiser step changes the weights in place: the stored prefixes must not be used
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    after = score_ratings(model, tok, CONCEPTS[:3], ["Visual"], batch_size=2, prefix_store=store)
    for _, row in after.iterrows():
        assert row["expected"] == pytest.approx(_naive_expected(model, tok, row["concept"], "Visual")[0], abs=1e-4)
    assert len(store) == 1
    before = halves[0][halves[0]["dimension"] == after["dimension"].iloc[0]]
    assert not np.allclose(
        after["expected"], before["expected"], atol=1e-3
    )  # the change is visible, so a stale prefix would fail

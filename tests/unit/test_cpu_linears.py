import json

import numpy as np
import pytest
import torch

from embodiment import cpu_linears
from embodiment.cpu_linears import BACKENDS, chosen_backend, inference_linears
from embodiment.embeddings import extract_embeddings
from embodiment.errors import InputError
from embodiment.models import tiny_causal_lm, tiny_tokenizer
from embodiment.choices import loglikelihoods
from embodiment.scoring import score_ratings

CONCEPTS = ["apple", "thunder", "a cappella", "idea", "x", "ice cream cone"]
needs_onednn = pytest.mark.skipif(cpu_linears._onednn_op() is None, reason="this torch build has no oneDNN linear")


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer()
    return tiny_causal_lm(tok, seed=5).eval(), tok


@pytest.fixture
def counted(monkeypatch):
    """The oneDNN backend with a call counter, so a test can tell which GEMM ran."""
    calls = {"n": 0}
    real = BACKENDS["onednn"]

    def counting(x, w, b):
        calls["n"] += 1
        return real(x, w, b)

    monkeypatch.setitem(BACKENDS, "onednn", counting)
    return calls


def _swapped(model) -> int:
    return sum("forward" in m.__dict__ for m in model.modules())


@needs_onednn
def test_onednn_linear_equals_a_float64_matmul():
    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(4, 7, 96, generator=gen), torch.randn(160, 96, generator=gen), torch.randn(160, generator=gen)
    exact = x.double() @ w.double().T + b.double()
    got = BACKENDS["onednn"](x, w, b)
    assert got.dtype == torch.float32 and got.shape == (4, 7, 160)
    assert torch.allclose(got.double(), exact, atol=1e-4)  # fp32 rounding, not a reduced-precision GEMM


@needs_onednn
@pytest.mark.parametrize("score", ["ratings", "loglikelihoods", "embeddings"])
def test_inference_on_onednn_linears_equals_stock(tiny, counted, monkeypatch, score):
    model, tok = tiny
    run = {
        "ratings": lambda: score_ratings(model, tok, CONCEPTS, ["Visual", "foot"], batch_size=4)[
            ["expected", "digit_mass"]
        ].to_numpy(),
        "loglikelihoods": lambda: np.array(
            loglikelihoods(model, tok, [("Concept: apple", " red"), ("Q", " a b")], batch_size=2)
        ),
        "embeddings": lambda: extract_embeddings(model, tok, CONCEPTS, batch_size=4).vectors["mean"],
    }[score]
    monkeypatch.setenv(cpu_linears.ENV, "stock")
    stock = run()
    assert counted["n"] == 0
    monkeypatch.setenv(cpu_linears.ENV, "onednn")
    fast = run()
    assert counted["n"] > 0  # the swapped linears really ran
    assert np.allclose(fast, stock, atol=1e-5)
    assert _swapped(model) == 0  # and are put back afterwards


@needs_onednn
def test_training_inside_the_block_keeps_stock_linears_and_gradients(tiny, counted):
    model, tok = tiny
    ids = torch.tensor([tok.encode("Concept: apple 3", add_special_tokens=False)])

    def grads():
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    outside = grads()
    with inference_linears(model, "onednn") as name:
        assert name == "onednn" and _swapped(model) > 0
        inside = grads()
    assert counted["n"] == 0  # gradients were needed: every linear fell back to F.linear
    assert len(inside) == len(outside) and all(torch.equal(a, b) for a, b in zip(inside, outside))
    model.zero_grad()


@needs_onednn
def test_blocks_nest_and_restore_even_after_an_error(tiny):
    model, _ = tiny
    n_linear = sum(type(m) is torch.nn.Linear for m in model.modules())
    with pytest.raises(RuntimeError, match="boom"):
        with inference_linears(model, "onednn"):
            with inference_linears(model, "stock") as inner:
                assert inner == "onednn"  # the outer choice stays
            assert _swapped(model) == n_linear  # the inner block did not undo the outer one
            raise RuntimeError("boom")
    assert _swapped(model) == 0


def test_models_that_are_not_fp32_keep_their_forward():
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=1).to(torch.bfloat16)
    with inference_linears(model, "onednn" if cpu_linears._onednn_op() else "stock") as name:
        assert name == "stock" and _swapped(model) == 0


def test_a_bad_backend_name_names_the_variable(monkeypatch):
    monkeypatch.setenv(cpu_linears.ENV, "mkl")
    with pytest.raises(InputError, match=r"EGRID_CPU_LINEARS.*auto, stock, onednn.*'mkl'"):
        chosen_backend()
    monkeypatch.setenv(cpu_linears.ENV, "auto")
    assert chosen_backend() in BACKENDS


def _noisy_clock(true: dict, rng: np.random.Generator):
    """Time of a call: its true time, 5 % jitter, and a neighbour's bursts (x3): a burst
    starts before 1 call in 15 and lasts 6 calls on average (about 30 % of the calls), as a
    busy neighbour's slices outlast a millisecond GEMM."""
    state = {"burst": 0}

    def clock(fn):
        if state["burst"] == 0 and rng.random() < 1 / 15:
            state["burst"] = int(rng.geometric(1 / 6))
        slow = 3.0 if state["burst"] > 0 else 1.0
        state["burst"] = max(0, state["burst"] - 1)
        return true[fn] * slow * float(np.exp(rng.normal(0.0, 0.05)))

    return clock


@pytest.mark.parametrize("candidate_time,faster", [(0.75, True), (1.05, False)])
def test_a_noisy_probe_does_not_flip_the_choice(candidate_time, faster):
    """Bursts on a third of the calls: the median of interleaved pairs decides the same way
    for every one of 300 noise draws, where one timing of each GEMM flips (the test's teeth)."""
    candidate, reference = (lambda: None), (lambda: None)
    true = {candidate: candidate_time, reference: 1.0}
    decisions, single = set(), set()
    for seed in range(300):
        clock = _noisy_clock(true, np.random.default_rng(seed))
        decisions.add(cpu_linears._median_ratio(candidate, reference, 15, clock) < 0.9)
        single.add(clock(candidate) / clock(reference) < 0.9)
    assert decisions == {faster}
    assert single == {True, False}


def test_auto_is_decided_once_per_machine_and_kept(tmp_path, monkeypatch):
    """The first process probes and writes its choice to the cache; a later one on a busy
    machine (whose probe would say the opposite) reads it; the variable still overrides."""
    monkeypatch.setenv("EGRID_CACHE", str(tmp_path))
    monkeypatch.delenv(cpu_linears.ENV, raising=False)
    cpu_linears._auto_backend.cache_clear()
    monkeypatch.setattr(cpu_linears, "_probe_ratio", lambda rounds=15: 0.5)
    try:
        assert chosen_backend() == "onednn"
        saved = json.loads((tmp_path / "cpu_linears.json").read_text())
        assert saved[cpu_linears.machine_key()]["backend"] == "onednn"
        cpu_linears._auto_backend.cache_clear()  # a new process
        monkeypatch.setattr(cpu_linears, "_probe_ratio", lambda rounds=15: 2.0)  # busy: oneDNN looks slow
        assert chosen_backend() == "onednn"
        monkeypatch.setenv(cpu_linears.ENV, "stock")
        assert chosen_backend() == "stock"
    finally:
        cpu_linears._auto_backend.cache_clear()

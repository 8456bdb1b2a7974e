import numpy as np
import pytest
import torch

from embodiment import cpu_linears
from embodiment.cpu_linears import BACKENDS, chosen_backend, inference_linears
from embodiment.embeddings import extract_embeddings
from embodiment.errors import InputError
from embodiment.models import tiny_causal_lm, tiny_tokenizer
from embodiment.scoring import loglikelihoods, score_ratings

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
    run = {"ratings": lambda: score_ratings(model, tok, CONCEPTS, ["Visual", "foot"], batch_size=4)[["expected", "digit_mass"]].to_numpy(),
           "loglikelihoods": lambda: np.array(loglikelihoods(model, tok, [("Concept: apple", " red"), ("Q", " a b")], batch_size=2)),
           "embeddings": lambda: extract_embeddings(model, tok, CONCEPTS, batch_size=4).vectors["mean"]}[score]
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

import numpy as np
import pytest

from embodiment.embeddings import extract_embeddings
from embodiment.errors import InputError
from embodiment.models import EMBEDDED, load_model, resolve_device_dtype, tiny_causal_lm, tiny_tokenizer
from embodiment.models.loading import load_adapter


def test_bad_reference_says_where_it_looked():
    with pytest.raises(InputError) as info:
        load_model("smollm-135m")
    msg = str(info.value)
    assert "not found" in msg and "did you mean 'smollm2-135m'" in msg
    assert "Hugging Face cache" in msg and "huggingface-cli download" in msg


def test_folder_without_config_and_missing_gguf(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(InputError, match="GGUF file not found"):
        load_model(str(tmp_path / "m.gguf"))


def test_adapter_must_be_safetensors(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(InputError, match="pickle files are refused"):
        load_adapter(tiny_causal_lm(), tmp_path)


def test_device_dtype_defaults_and_overrides():
    dev, dt = resolve_device_dtype("cpu")
    assert dev.type == "cpu" and str(dt) == "torch.float32"
    assert str(resolve_device_dtype("cpu", "bf16")[1]) == "torch.bfloat16"
    with pytest.raises(InputError, match="unknown dtype"):
        resolve_device_dtype("cpu", "fp8")


def test_saved_tiny_model_loads_from_folder(tmp_path):
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm = load_model(str(tmp_path), device="cpu")
    assert lm.kind == "causal" and lm.tokenizer.padding_side == "right"


def test_embeddings_all_layers_pooled_over_concept_tokens():
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, layers=3)
    concepts = ["apple", "thunder storm", "x"]
    one = extract_embeddings(model, tok, concepts, batch_size=1)
    many = extract_embeddings(model, tok, concepts, batch_size=3)
    assert one.layers == [0, 1, 2, 3]
    assert one.vectors["mean"].shape == (4, 3, 48) and one.vectors["mean"].dtype == np.float32
    assert np.allclose(one.vectors["mean"], many.vectors["mean"], atol=1e-5)
    # layer 0 mean = mean of the concept's own token embeddings (oracle)
    ids = tok.encode(" x", add_special_tokens=False)
    emb = model.get_input_embeddings().weight.detach().numpy()[ids].mean(0)
    assert np.allclose(one.layer(0)[2], emb, atol=1e-6)
    assert np.allclose(
        one.layer(0, "last")[2], model.get_input_embeddings().weight.detach().numpy()[ids[-1]], atol=1e-6
    )
    frame = one.to_frame()
    assert len(frame) == 2 * 4 * 3 and set(frame["pooling"]) == {"mean", "last"}
    assert extract_embeddings(model, tok, concepts, layers=[-1]).layers == [3]


def test_embedded_registry_names():
    assert set(EMBEDDED) == {"smollm2-135m", "minilm"}
    assert EMBEDDED["minilm"].kind == "encoder"

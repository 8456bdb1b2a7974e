"""Models: load any causal LM (or the embedded ones), build tiny ones for tests."""

from embodiment.models.loading import EMBEDDED, LoadedModel, load_model, resolve_device_dtype
from embodiment.models.tiny import tiny_causal_lm, tiny_tokenizer

__all__ = ["EMBEDDED", "LoadedModel", "load_model", "resolve_device_dtype", "tiny_causal_lm", "tiny_tokenizer"]

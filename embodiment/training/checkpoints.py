"""Checkpoints and saved weights: safetensors only, checked after saving (ZeRO-3 with LoRA
is known to save empty adapters); the optimizer state for an exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from embodiment.training.config import TrainConfig
from embodiment.training.model import ObjectiveModel


def _trainable_state(module: torch.nn.Module, zero_stage: int) -> dict[str, torch.Tensor]:
    params = {n: p for n, p in module.named_parameters() if p.requires_grad}
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(params.values()), modifier_rank=None):
            return {n: p.detach().float().cpu().clone() for n, p in params.items()}
    return {n: p.detach().float().cpu().clone() for n, p in params.items()}


def _full_state(module: torch.nn.Module, zero_stage: int) -> dict[str, torch.Tensor]:
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            return {n: p.detach().cpu().clone() for n, p in module.state_dict().items()}
    return {n: p.detach().cpu().clone() for n, p in module.state_dict().items()}


def verify_adapter(adapter_dir: str | Path) -> int:
    """Check a saved LoRA adapter: a non-empty safetensors file whose B matrices are not all
    zero (all-zero B means the update was lost, as with ZeRO-3 saves that gather nothing).

    Returns:
        The number of tensors in the adapter.
    """
    from safetensors.torch import load_file

    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.exists() or path.stat().st_size == 0:
        raise RuntimeError(f"{path}: adapter file missing or empty after save")
    tensors = load_file(path)
    b = [t for k, t in tensors.items() if "lora_B" in k]
    if not tensors or not b or all(float(t.abs().max()) == 0.0 for t in b):
        raise RuntimeError(
            f"{path}: adapter has no trained LoRA B weights ({len(tensors)} tensors); nothing was learned or saved"
        )
    return len(tensors)


def _save(
    module: ObjectiveModel,
    cfg: TrainConfig,
    out: Path,
    state: dict[str, torch.Tensor],
    full: dict | None,
    steps: int,
    losses: list[float],
) -> tuple[str | None, str | None, str | None]:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    adapter_dir = model_dir = head_path = None
    head_state = {k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")}
    if cfg.lora:
        lm_state = {k[len("lm.") :]: v for k, v in state.items() if k.startswith("lm.")}
        adapter_dir = str(out / "adapter")
        module.lm.save_pretrained(adapter_dir, state_dict=lm_state, safe_serialization=True)
        if steps > 0:
            verify_adapter(adapter_dir)
    else:
        model_dir = str(out / "model")
        lm_full = {k[len("lm.") :]: v for k, v in (full or {}).items() if k.startswith("lm.")}
        module.lm.save_pretrained(model_dir, state_dict=lm_full, safe_serialization=True)
    if head_state:
        head_path = str(out / "head.safetensors")
        save_file({k: v.contiguous() for k, v in head_state.items()}, head_path)
    (out / "train_state.json").write_text(json.dumps({"steps": steps, "losses": losses, "config": cfg.model_dump()}))
    return adapter_dir, model_dir, head_path


OPTIMIZER_FILE = "optimizer.safetensors"


def _optimizer_tensors(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """AdamW moments and step counts keyed ``<param index>.<name>``: with them a resumed run
    continues exactly as an uninterrupted one (safetensors, never pickle)."""
    index = {id(p): i for i, p in enumerate(params)}
    out = {}
    for p, state in optimizer.state.items():
        if id(p) in index:
            for name, value in state.items():
                value = value if torch.is_tensor(value) else torch.tensor(value)
                out[f"{index[id(p)]}.{name}"] = value.detach().cpu().contiguous()
    return out


def _load_optimizer(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], path: Path) -> None:
    from safetensors.torch import load_file

    for key, value in load_file(path).items():
        i, name = key.split(".", 1)
        p = params[int(i)]
        optimizer.state[p][name] = value if name == "step" else value.to(p.device)


def _load_checkpoint(module: ObjectiveModel, ckpt: Path) -> tuple[int, list[float]]:
    """Load trainable weights saved by :func:`_save` into ``module``; returns (steps, losses)."""
    from safetensors.torch import load_file

    state = json.loads((ckpt / "train_state.json").read_text())
    if (ckpt / "adapter" / "adapter_model.safetensors").exists():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(module.lm, load_file(ckpt / "adapter" / "adapter_model.safetensors"))
    elif (ckpt / "model").exists():
        from transformers import AutoModelForCausalLM

        module.lm.load_state_dict(AutoModelForCausalLM.from_pretrained(ckpt / "model").state_dict())
    if module.head is not None and (ckpt / "head.safetensors").exists():
        module.head.load_state_dict(load_file(ckpt / "head.safetensors"))
    return int(state["steps"]), list(state["losses"])

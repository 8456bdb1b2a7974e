"""What trains: the language model (LoRA-wrapped or whole), an optional head, and the
format whose loss the module returns; gradient checkpointing; loading a trained head."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from embodiment.formats import TaskFormat
from embodiment.training.config import TrainConfig


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        output_dir: where the weights are.
        adapter_dir: the LoRA adapter folder (None for full fine-tuning).
        model_dir: the full model folder (None for LoRA).
        head_path: the regression head's safetensors file, if the format has one.
        losses: training loss at every optimizer step.
        steps: optimizer steps run (including those before a resume).
        seconds: wall time of this call.
        engine: the engine that ran.
        world_size: data-parallel workers.
    """

    output_dir: str
    adapter_dir: str | None
    model_dir: str | None
    head_path: str | None
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    engine: str = "deepspeed"
    world_size: int = 1


class ObjectiveModel(torch.nn.Module):
    """The language model, an optional head, and the format whose loss ``forward`` returns.

    DeepSpeed wraps this one module, so LoRA weights and the head train together.
    """

    def __init__(self, lm: torch.nn.Module, fmt: TaskFormat, head: torch.nn.Module | None = None):
        super().__init__()
        self.lm = lm
        self.head = head
        self.fmt = fmt
        # the format's tokenizer-dependent ids (rating: the digits), on the module's device
        for name, ids in fmt.token_ids().items():
            self.register_buffer(name, torch.tensor(ids, dtype=torch.long), persistent=False)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        return self.fmt.loss(self, batch)


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each block's activations in the backward pass (non-reentrant, so frozen
    inputs under LoRA need no grad hooks, and shared prefix keys pass through unchanged)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _wrap_lora(model: torch.nn.Module, cfg: TrainConfig) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    layers, targets = None, cfg.target_modules
    if cfg.lora_top_layers:
        total = model.config.num_hidden_layers
        layers = list(range(max(0, total - cfg.lora_top_layers), total))
        if targets == "all-linear":  # PEFT takes a layer range only with module names
            targets = sorted(
                {
                    name.rsplit(".", 1)[-1]
                    for name, mod in model.named_modules()
                    if isinstance(mod, torch.nn.Linear) and ".layers." in name
                }
            )
    lora = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def load_head(path: str | Path, hidden: int, outputs: int) -> torch.nn.Module:
    """A regression head saved by :func:`train` (safetensors only)."""
    from safetensors.torch import load_file

    head = torch.nn.Linear(hidden, outputs)
    head.load_state_dict(load_file(str(path)))
    return head.eval()

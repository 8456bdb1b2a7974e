"""One fine-tuning run as a function of a plain config.

The DeepSpeed engine is the training path (ZeRO 0-3; gloo on CPU, NCCL on GPUs); plain
torch is the fallback where deepspeed cannot run. LoRA comes from PEFT; full fine-tuning
is ``lora: false``. The data order is a function of (seed, step), so a run resumed from a
checkpoint continues exactly where it stopped. Weights are saved as safetensors and
checked after saving (ZeRO-3 with LoRA is known to save empty adapters).
"""

from embodiment.training.batching import BatchPlan, batch_plan
from embodiment.training.checkpoints import verify_adapter
from embodiment.training.config import (
    AUTOCAST,
    ENGINES,
    MAX_COUNT,
    PRECISIONS,
    Count,
    FormatName,
    NonNegative,
    PositiveCount,
    TrainConfig,
    learning_rate_at,
    weight_dtype,
)
from embodiment.training.distributed import deepspeed_config, ensure_distributed
from embodiment.training.loop import train
from embodiment.training.model import ObjectiveModel, TrainResult, enable_checkpointing, load_head

__all__ = [
    "AUTOCAST",
    "BatchPlan",
    "Count",
    "ENGINES",
    "FormatName",
    "MAX_COUNT",
    "NonNegative",
    "ObjectiveModel",
    "PRECISIONS",
    "PositiveCount",
    "TrainConfig",
    "TrainResult",
    "batch_plan",
    "deepspeed_config",
    "enable_checkpointing",
    "ensure_distributed",
    "learning_rate_at",
    "load_head",
    "train",
    "verify_adapter",
    "weight_dtype",
]

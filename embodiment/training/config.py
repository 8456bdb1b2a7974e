"""The training options (TrainConfig): every option's type, range and choices, once; the
learning-rate schedule."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from embodiment.errors import InputError, did_you_mean
from embodiment.formats.rating import RATING_BATCHES, RATING_LOSSES
from embodiment.validation import NamesOrAll, first_problem

ENGINES = ("deepspeed", "torch")
# precision -> the dtype the weights are trained in. amp_bf16 keeps fp32 weights and
# optimizer state and runs matmuls under torch.autocast(bf16): the usual AMP loop, and
# under DeepSpeed its torch_autocast mode, which skips the bf16 mode's fp32 master copies.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "amp_bf16": torch.float32}
AUTOCAST = {"amp_bf16": torch.bfloat16}  # precision -> autocast dtype, where it autocasts


#: learning-rate multiplier after warm-up, as a function of progress p in [0, 1]
LR_SCHEDULES = {
    "constant": lambda p: 1.0,
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
}


def learning_rate_at(cfg: "TrainConfig", step: int, total_steps: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``: linear
    warm-up over ``cfg.warmup`` of the steps, then ``cfg.lr_schedule``. A function of the
    step alone, so a resumed run follows the same schedule.

    Args:
        cfg: the run's configuration.
        step: the optimizer step about to be taken.
        total_steps: optimizer steps of the whole run.
    """
    warm = int(round(cfg.warmup * total_steps))
    if step < warm:
        return cfg.learning_rate * (step + 1) / (warm + 1)
    progress = (step - warm) / max(1, total_steps - warm)
    return cfg.learning_rate * LR_SCHEDULES[cfg.lr_schedule](progress)


MAX_COUNT = 10**9  # larger counts are typos (or a night lost), not experiments


def _registered_format(name: str) -> str:
    from embodiment.formats import FORMATS  # the registry as it is now: formats may register late

    if name not in FORMATS:
        raise ValueError(f"got {name!r}{did_you_mean(name, FORMATS)}, expected one of {', '.join(FORMATS)}")
    return name


# The annotations below are the one statement of what each option accepts: pydantic checks
# them (TrainConfig.from_dict, the job spec's training and search sections).
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
PositiveCount = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
FormatName = Annotated[str, AfterValidator(_registered_format)]
Engine = Literal[ENGINES]
Precision = Literal[tuple(PRECISIONS)]
ZeroStage = Annotated[int, Field(ge=0, le=3)]  # not a Literal: that would take false for 0
RatingBatches = Literal[RATING_BATCHES]
RatingLoss = Literal[RATING_LOSSES]
LrSchedule = Literal[tuple(LR_SCHEDULES)]


def weight_dtype(precision: str) -> str | None:
    """The dtype name to load a model's weights in for ``precision``; None for fp32.

    Args:
        precision: a TrainConfig precision.
    """
    return None if PRECISIONS[precision] is torch.float32 else precision


class TrainConfig(BaseModel):
    """Everything one fine-tuning run needs to know; plain values, so it travels as JSON/YAML.

    Attributes:
        format: task format (learning objective): rating, mcq, regression, pairwise, alignment.
        lora: LoRA (True) or full fine-tuning (False).
        lora_rank, lora_alpha, lora_dropout: LoRA hyperparameters.
        target_modules: module names LoRA adapts, or ``all-linear``.
        lora_top_layers: adapt only the last N transformer blocks (None: all). The
            backward pass then stops at the lowest adapted block, so a step costs less.
        learning_rate: AdamW learning rate.
        steps: optimizer steps; ``epochs`` is used when steps is None.
        epochs: passes over the training examples.
        batch_size: examples per worker per micro-step.
        grad_accum: micro-steps per optimizer step.
        seed: seeds initialisation and data order.
        precision: fp32, bf16, fp16 (weights in that dtype) or amp_bf16 (fp32 weights,
            bf16 autocast).
        zero_stage: DeepSpeed ZeRO stage 0-3.
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient clipping.
        engine: deepspeed (default) or torch (fallback).
        checkpoint_every: save a resumable checkpoint every N steps (0: only at the end).
        group_by_length: where the format allows it (per-example losses over examples of
            varied length: mcq, regression), each micro-batch holds examples of similar
            token length, as Hugging Face's ``group_by_length``: padding is computed like
            real tokens. Every example is still seen once per epoch; per-step losses vary
            more (each batch is one length group).
        shared_prefix: where the format has one (rating), each distinct prompt prefix of a
            batch (one per dimension and language) runs once and its keys and values serve
            every example of the batch; exact, only faster.
        rating_batches: what one rating batch holds: ``concept`` (every dimension of
            batch_size / dimensions concepts; the default), ``dimension`` (one dimension:
            one prefix per batch, the fastest) or ``random``.
        rating_loss: the rating format's loss: ``soft_ce`` (soft digit cross-entropy),
            ``expected_mse`` (squared error of the expected rating) or ``both``.
        lr_schedule: ``constant``, ``linear`` (decay to 0) or ``cosine`` (to 0), after warm-up.
        warmup: fraction of the optimizer steps over which the learning rate rises
            linearly from 0.
        gradient_checkpointing: keep only each block's inputs in the forward pass and
            recompute its activations in the backward (activation memory of one block, not of
            all; a step costs about a third more). Same gradients. Rating prompts then run
            whole (a checkpointed model returns no key/value cache for shared prefixes).
        offload_optimizer: keep the optimizer's states (and its step) in CPU memory, not on
            the accelerator (DeepSpeed ZeRO-Offload; needs ``engine: deepspeed`` and
            ``zero_stage`` 1-3). Frees 8 bytes per trainable parameter (fp32 AdamW) on the
            device; each step copies gradients out and weights back.
    """

    # strict: YAML's own types only (no "2" for 2, no true for 1); ints pass as floats.
    # Built in code or from a dict, a TrainConfig is always a checked one.
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    format: FormatName = "rating"
    lora: bool = True
    lora_rank: PositiveCount = 8
    lora_alpha: PositiveCount = 16
    lora_dropout: Fraction = 0.0
    target_modules: NamesOrAll = "all-linear"  # module names, or all-linear
    lora_top_layers: PositiveCount | None = None
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0, allow_inf_nan=False)] = 2e-4
    steps: Count | None = 100
    epochs: Annotated[float, Field(gt=0.0, le=MAX_COUNT, allow_inf_nan=False)] | None = Field(
        None, validate_default=True
    )
    batch_size: PositiveCount = 8
    grad_accum: PositiveCount = 1
    seed: Count = 0
    precision: Precision = "fp32"
    zero_stage: ZeroStage = 0
    weight_decay: NonNegative = 0.0
    max_grad_norm: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 1.0
    engine: Engine = "deepspeed"
    checkpoint_every: Count = 0
    group_by_length: bool = True
    shared_prefix: bool = True
    rating_batches: RatingBatches = "concept"
    rating_loss: RatingLoss = "soft_ce"
    lr_schedule: LrSchedule = "constant"
    warmup: Fraction = 0.0
    gradient_checkpointing: bool = False
    offload_optimizer: bool = False

    @field_validator("offload_optimizer")
    @classmethod
    def _offload_needs_zero(cls, offload, info):
        if offload and (info.data.get("engine") != "deepspeed" or not info.data.get("zero_stage")):
            raise ValueError("offload_optimizer needs engine: deepspeed and zero_stage 1, 2 or 3")
        return offload

    @field_validator("epochs")
    @classmethod
    def _steps_or_epochs(cls, epochs, info):
        if epochs is None and info.data.get("steps", 0) is None:
            raise ValueError("steps or epochs must be set (both are null)")
        return epochs

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a plain dict, checking every option (types, ranges, names).

        Raises:
            InputError: naming the first wrong option, what was found and what was expected.
        """
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            key, message = first_problem(exc, allowed_keys=cls.model_fields)
            raise InputError(message, key=key) from None

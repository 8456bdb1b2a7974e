"""One fine-tuning run as a function of a plain config.

The DeepSpeed engine is the training path (ZeRO 0-3; gloo on CPU, NCCL on GPUs); plain
torch is the fallback where deepspeed cannot run. LoRA comes from PEFT; full fine-tuning
is ``lora: false``. The data order is a function of (seed, step), so a run resumed from a
checkpoint continues exactly where it stopped. Weights are saved as safetensors and
checked after saving (ZeRO-3 with LoRA is known to save empty adapters).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from embodiment.errors import InputError, did_you_mean
from embodiment.formats import TaskData, TaskFormat, get_format
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
    epochs: Annotated[float, Field(gt=0.0, le=MAX_COUNT, allow_inf_nan=False)] | None = Field(None, validate_default=True)
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _skip_cpu_shm_comm_build() -> None:
    """Keep DeepSpeed from JIT-compiling its CPU shared-memory all-reduce op.

    On the CPU accelerator every ``deepspeed.initialize`` compiles that op (tens of seconds on
    a fresh machine) behind a lock file in ~/.cache/torch_extensions; a process killed mid-compile
    (a fault test, a pre-empted worker) leaves the lock behind and every later run waits on
    it forever. The op only speeds up inference all-reduce, which training never calls, so
    torch.distributed (gloo) does the work instead.
    """
    import deepspeed.ops

    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() == "cpu":
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def ensure_distributed(backend: str | None = None) -> tuple[int, int]:
    """Initialise torch.distributed for DeepSpeed if no launcher did (rank 0 of 1).

    Inside Ray Train the process group already exists and is reused.
    """
    import deepspeed

    _skip_cpu_shm_comm_build()
    if not torch.distributed.is_initialized():
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        os.environ.setdefault("LOCAL_RANK", "0")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        deepspeed.init_distributed(dist_backend=backend or ("nccl" if torch.cuda.is_available() else "gloo"),
                                   verbose=False)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def deepspeed_config(cfg: TrainConfig) -> dict:
    """The DeepSpeed config of a run: micro-batch, accumulation, clipping, ZeRO stage, precision.

    The optimizer is a torch one passed to ``deepspeed.initialize`` (FusedAdam would
    JIT-compile on every fresh worker), hence ``zero_allow_untested_optimizer``.
    """
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": cfg.max_grad_norm,
        "zero_optimization": {"stage": cfg.zero_stage},
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": cfg.precision == "bf16"},
        "fp16": {"enabled": cfg.precision == "fp16"},
        "torch_autocast": {"enabled": cfg.precision in AUTOCAST, "dtype": str(AUTOCAST.get(cfg.precision, torch.bfloat16))},
        "steps_per_print": 10**9,
    }


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
            targets = sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
                              if isinstance(mod, torch.nn.Linear) and ".layers." in name})
    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, layers_to_transform=layers, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


#: micro-batches per length-sorted window (Hugging Face's megabatch multiplier)
LENGTH_WINDOW = 50


@dataclass(frozen=True)
class BatchPlan:
    """How examples are put into batches (beyond a seeded permutation).

    Attributes:
        keys: sort keys (token lengths, or a prompt group then its length): each window
            of LENGTH_WINDOW batches is sorted by them, so a batch holds similar examples.
        units: a unit id per example (a concept, for ratings of every dimension of it):
            each epoch permutes whole units and lays their examples out together.
    """

    keys: np.ndarray | None = None
    units: np.ndarray | None = None


def _epoch_order(n: int, seed: int, epoch: int, batch: int, plan: BatchPlan | None) -> np.ndarray:
    """The examples of one epoch in training order: a seeded permutation; with ``plan.units``,
    a permutation of whole units; with ``plan.keys``, each window of LENGTH_WINDOW batches
    of it is sorted by key and cut into batches, and the full batches are shuffled (the
    partial one, if any, goes last so that every other batch starts on a micro-batch
    boundary)."""
    rng = np.random.default_rng([seed, epoch])
    if plan is not None and plan.units is not None:
        by_unit = np.argsort(plan.units, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(plan.units[by_unit]) != 0])
        members = np.split(by_unit, starts[1:])
        return np.concatenate([members[u] for u in rng.permutation(len(members))])
    perm = rng.permutation(n)
    if plan is None or plan.keys is None:
        return perm
    full, partial = [], []
    for start in range(0, n, LENGTH_WINDOW * batch):
        window = perm[start: start + LENGTH_WINDOW * batch]
        window = window[np.argsort(-plan.keys[window], kind="stable")]
        for i in range(0, len(window), batch):
            (full if len(window[i: i + batch]) == batch else partial).append(window[i: i + batch])
    shuffled = [full[k] for k in np.random.default_rng([seed, epoch, 1]).permutation(len(full))]
    return np.concatenate(shuffled + partial)


def batch_plan(fmt: TaskFormat, examples: list[dict], tokenizer, cfg: "TrainConfig") -> BatchPlan | None:
    """How the format's examples are batched, or None for random batches.

    A format's :meth:`~TaskFormat.batch_unit` keeps a unit's examples together (every
    dimension of one concept); its :meth:`~TaskFormat.batch_group` (the rating prompt's
    prefix) comes first in the sort keys, so a batch holds one group and runs its shared
    prefix once; within a group, or where the format allows it, the token length
    (``group_by_length``) orders examples so that a batch pads little.
    """
    units = [fmt.batch_unit(ex) for ex in examples]
    if any(u is not None for u in units):
        rank = {u: i for i, u in enumerate(dict.fromkeys(units))}
        return BatchPlan(units=np.array([rank[u] for u in units], dtype=np.int64))
    groups = [fmt.batch_group(ex) for ex in examples]
    by_length = cfg.group_by_length and (fmt.batch_by_length or any(g is not None for g in groups))
    if not by_length and all(g is None for g in groups):
        return None
    lengths = np.array([fmt.length(ex, tokenizer) for ex in examples]) if by_length else np.zeros(len(examples), int)
    rank = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    return BatchPlan(keys=np.array([rank[g] for g in groups], dtype=np.int64) * (int(lengths.max(initial=0)) + 1) + lengths)


def _micro_batch_indices(n: int, micro: int, batch: int, rank: int, world: int, seed: int,
                         plan: BatchPlan | None = None) -> np.ndarray:
    """Example indices of one worker's micro-batch: each epoch's order (:func:`_epoch_order`)
    read as one stream, so the order depends only on (seed, micro-step) and resumes exactly."""
    start = (micro * world + rank) * batch
    positions = np.arange(start, start + batch)
    out = np.empty(batch, dtype=np.int64)
    for epoch in np.unique(positions // n):
        order = _epoch_order(n, seed, int(epoch), batch, plan)
        sel = positions // n == epoch
        out[sel] = order[positions[sel] % n]
    return out


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
        raise RuntimeError(f"{path}: adapter has no trained LoRA B weights ({len(tensors)} tensors); nothing was learned or saved")
    return len(tensors)


def _save(module: ObjectiveModel, cfg: TrainConfig, out: Path, state: dict[str, torch.Tensor], full: dict | None,
          steps: int, losses: list[float]) -> tuple[str | None, str | None, str | None]:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    adapter_dir = model_dir = head_path = None
    head_state = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
    if cfg.lora:
        lm_state = {k[len("lm."):]: v for k, v in state.items() if k.startswith("lm.")}
        adapter_dir = str(out / "adapter")
        module.lm.save_pretrained(adapter_dir, state_dict=lm_state, safe_serialization=True)
        if steps > 0:
            verify_adapter(adapter_dir)
    else:
        model_dir = str(out / "model")
        lm_full = {k[len("lm."):]: v for k, v in (full or {}).items() if k.startswith("lm.")}
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


@dataclass
class _Run:
    """What one training run holds between its stages."""

    fmt: TaskFormat
    examples: list[dict]
    plan: BatchPlan | None
    module: ObjectiveModel
    params: list[torch.Tensor]
    optimizer: torch.optim.Optimizer
    engine: torch.nn.Module = None
    device: torch.device = None
    rank: int = 0
    world: int = 1


def _build(cfg: TrainConfig, model: torch.nn.Module, tokenizer, data: TaskData) -> _Run:
    """The format, its examples and batch plan, the (LoRA-wrapped) module and its optimizer."""
    if cfg.gradient_checkpointing and cfg.shared_prefix:
        # a checkpointed model in training returns no key/value cache to share: full prompts
        cfg = cfg.model_copy(update={"shared_prefix": False})
    fmt = get_format(cfg.format).configure(data).with_options(cfg)
    examples = fmt.examples(data)
    if not examples:
        raise InputError("no training examples: the training split is empty for this format", key="format")
    plan = batch_plan(fmt, examples, tokenizer, cfg)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    lm = _wrap_lora(model, cfg) if cfg.lora else model
    head = torch.nn.Linear(model.config.hidden_size, fmt.head_outputs) if fmt.head_outputs else None
    module = ObjectiveModel(lm, fmt.prepare(tokenizer), head)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return _Run(fmt, examples, plan, module, params, optimizer)


def _resume(run: _Run, resume_from: str | Path | None) -> tuple[int, list[float]]:
    """Weights (and, where saved, the optimizer) of a checkpoint: (steps done, losses)."""
    if resume_from is None or not (Path(resume_from) / "train_state.json").exists():
        return 0, []
    done, losses = _load_checkpoint(run.module, Path(resume_from))
    if (Path(resume_from) / OPTIMIZER_FILE).exists():
        _load_optimizer(run.optimizer, run.params, Path(resume_from) / OPTIMIZER_FILE)
    return done, losses


def _start_engine(run: _Run, cfg: TrainConfig) -> None:
    """DeepSpeed (one rank of the process group) or the plain torch loop on this device."""
    if cfg.engine == "deepspeed":
        import deepspeed

        run.rank, run.world = ensure_distributed()
        run.engine, *_ = deepspeed.initialize(model=run.module, optimizer=run.optimizer, config=deepspeed_config(cfg))
        run.device = run.engine.device
    else:
        run.engine = run.module
        run.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        run.module.to(run.device)


def _optimizer_step(run: _Run, cfg: TrainConfig, step: int, tokenizer, autocast) -> float:
    """One optimizer step over ``cfg.grad_accum`` micro-batches; the step's mean loss."""
    losses = []
    for accum in range(cfg.grad_accum):
        micro = step * cfg.grad_accum + accum
        idx = _micro_batch_indices(len(run.examples), micro, cfg.batch_size, run.rank, run.world, cfg.seed, run.plan)
        batch = {k: v.to(run.device) for k, v in run.fmt.collate([run.examples[i] for i in idx], tokenizer).items()}
        if cfg.engine == "deepspeed":
            loss = run.engine(**batch)
            run.engine.backward(loss)
            run.engine.step()
        else:
            with autocast:
                loss = run.engine(**batch) / cfg.grad_accum
            loss.backward()
            if accum == cfg.grad_accum - 1:
                torch.nn.utils.clip_grad_norm_(run.params, cfg.max_grad_norm)
                run.optimizer.step()
                run.optimizer.zero_grad(set_to_none=True)
            loss = loss * cfg.grad_accum
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def _checkpoint(run: _Run, cfg: TrainConfig, out: Path, steps: int, losses: list[float], exact_resume: bool) -> str | None:
    """Write a checkpoint after ``steps`` (every rank gathers; rank 0 writes): its folder on rank 0."""
    state = _trainable_state(run.module, cfg.zero_stage)
    full = None if cfg.lora else _full_state(run.module, cfg.zero_stage)
    if run.rank != 0:
        return None
    ckpt = out / "checkpoints" / f"step_{steps:06d}"
    _save(run.module, cfg, ckpt, state, full, steps, losses)
    if exact_resume:
        from safetensors.torch import save_file

        save_file(_optimizer_tensors(run.optimizer, run.params), str(ckpt / OPTIMIZER_FILE))
    return str(ckpt)


def train(cfg: TrainConfig, model: torch.nn.Module, tokenizer, data: TaskData, output_dir: str | Path, *,
          resume_from: str | Path | None = None,
          report: Callable[[int, float, str | None], None] | None = None,
          progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Fine-tune ``model`` on ``data`` with the objective ``cfg.format``.

    Args:
        cfg: the run's configuration.
        model: a causal LM (not yet LoRA-wrapped).
        tokenizer: its tokenizer.
        data: the training split.
        output_dir: where the adapter / model, head and train_state.json go.
        resume_from: a checkpoint folder written by an earlier call (weights + step).
        report: called on every rank as (step, loss, checkpoint folder or None) after each
            step; rank 0 gets a folder when it just wrote a checkpoint.
        progress: called on rank 0 as (step, loss) after each step.

    Returns:
        :class:`TrainResult` (on every rank; only rank 0 writes files).
    """
    start_time = time.perf_counter()
    torch.manual_seed(cfg.seed)
    run = _build(cfg, model, tokenizer, data)
    done, losses = _resume(run, resume_from)
    _start_engine(run, cfg)
    # DeepSpeed autocasts inside its engine (torch_autocast); the torch loop does it here
    autocast = torch.autocast(run.device.type, dtype=AUTOCAST.get(cfg.precision, torch.bfloat16),
                              enabled=cfg.engine == "torch" and cfg.precision in AUTOCAST)
    # With ZeRO-0 in fp32 the torch optimizer holds the real, unpartitioned state: save it
    # so a resume is exact. (ZeRO >= 1 partitions it and bf16 keeps fp32 master copies in
    # DeepSpeed's wrapper: those resume from the weights, with fresh moments.)
    exact_resume = cfg.engine == "torch" or (cfg.zero_stage == 0 and cfg.precision == "fp32")
    total_steps = cfg.steps if cfg.steps is not None else math.ceil(
        cfg.epochs * len(run.examples) / (cfg.batch_size * run.world * cfg.grad_accum))
    out = Path(output_dir)
    optimizer = run.engine.optimizer if cfg.engine == "deepspeed" else run.optimizer
    for step in range(done, total_steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(cfg, step, total_steps)
        losses.append(_optimizer_step(run, cfg, step, tokenizer, autocast))
        ckpt = None
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total_steps:
            ckpt = _checkpoint(run, cfg, out, step + 1, losses, exact_resume)
        if report:  # every rank: Ray Train's report is a collective call
            report(step + 1, losses[-1], ckpt)
        if progress and run.rank == 0:
            progress(step + 1, losses[-1])
    state = _trainable_state(run.module, cfg.zero_stage)
    full = None if cfg.lora else _full_state(run.module, cfg.zero_stage)
    adapter_dir = model_dir = head_path = None
    if run.rank == 0:
        adapter_dir, model_dir, head_path = _save(run.module, cfg, out, state, full, total_steps, losses)
    run.module.eval()
    return TrainResult(str(out), adapter_dir, model_dir, head_path, losses, total_steps, time.perf_counter() - start_time,
                       cfg.engine, run.world)


def load_head(path: str | Path, hidden: int, outputs: int) -> torch.nn.Module:
    """A regression head saved by :func:`train` (safetensors only)."""
    from safetensors.torch import load_file

    head = torch.nn.Linear(hidden, outputs)
    head.load_state_dict(load_file(str(path)))
    return head.eval()

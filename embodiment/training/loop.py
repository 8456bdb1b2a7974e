"""One fine-tuning run, as a recipe read top to bottom: build the module and its batches,
resume, start the engine, step, checkpoint, save."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from embodiment.errors import InputError
from embodiment.formats import TaskData, TaskFormat, get_format
from embodiment.training.batching import BatchPlan, _micro_batch_indices, batch_plan
from embodiment.training.checkpoints import (
    OPTIMIZER_FILE,
    _full_state,
    _load_checkpoint,
    _load_optimizer,
    _optimizer_tensors,
    _save,
    _trainable_state,
)
from embodiment.training.config import AUTOCAST, TrainConfig, learning_rate_at
from embodiment.training.distributed import deepspeed_config, ensure_distributed
from embodiment.training.model import ObjectiveModel, TrainResult, _wrap_lora, enable_checkpointing


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


def _checkpoint(
    run: _Run, cfg: TrainConfig, out: Path, steps: int, losses: list[float], exact_resume: bool
) -> str | None:
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


def train(
    cfg: TrainConfig,
    model: torch.nn.Module,
    tokenizer,
    data: TaskData,
    output_dir: str | Path,
    *,
    resume_from: str | Path | None = None,
    report: Callable[[int, float, str | None], None] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> TrainResult:
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
    autocast = torch.autocast(
        run.device.type,
        dtype=AUTOCAST.get(cfg.precision, torch.bfloat16),
        enabled=cfg.engine == "torch" and cfg.precision in AUTOCAST,
    )
    # With ZeRO-0 in fp32 the torch optimizer holds the real, unpartitioned state: save it
    # so a resume is exact. (ZeRO >= 1 partitions it and bf16 keeps fp32 master copies in
    # DeepSpeed's wrapper: those resume from the weights, with fresh moments.)
    exact_resume = cfg.engine == "torch" or (cfg.zero_stage == 0 and cfg.precision == "fp32")
    total_steps = (
        cfg.steps
        if cfg.steps is not None
        else math.ceil(cfg.epochs * len(run.examples) / (cfg.batch_size * run.world * cfg.grad_accum))
    )
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
    return TrainResult(
        str(out),
        adapter_dir,
        model_dir,
        head_path,
        losses,
        total_steps,
        time.perf_counter() - start_time,
        cfg.engine,
        run.world,
    )

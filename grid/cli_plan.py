"""``egrid plan JOB``: per model and condition, the parameters, the memory per rank of a
training step, whether it fits the accelerator, the largest batch that does, and how long
the trials will take -- before anything is loaded or started."""

from __future__ import annotations

import argparse
import random

import pandas as pd

from embodiment.errors import InputError
from grid.node_cache import is_uri, local_copy

#: peak dense bf16 TFLOPs of accelerators a job may name (``--gpu``), and their memory in GiB
ACCELERATORS = {
    "h100": (989.0, 80),
    "h200": (989.0, 141),
    "a100": (312.0, 80),
    "l40s": (362.0, 48),
    "a10g": (125.0, 24),
}
#: the fraction of peak a LoRA fine-tuning step reaches on a GPU (a stated assumption)
DEFAULT_MFU = 0.35
#: seconds per GFLOP of a CPU training step (fp32): this project's 2-core AVX2 CPU, measured
#: with bench/bench_plan.py (docs/performance.md); other machines: re-measure with it
CPU_SECONDS_PER_GFLOP = 1.0 / 97.0
GIB = 2**30


def micro_batches(fmt, data, tokenizer, cfg, sample: int = 8) -> list[dict]:
    """Padded sizes of micro-batches the training loop would make (as it batches them),
    drawn at random: rows, padded tokens (every token tensor of the batch, a shared
    prompt prefix included) and the longest sequence."""
    import numpy as np

    from embodiment.training.batching import _micro_batch_indices, batch_plan

    examples = fmt.examples(data)
    plan = batch_plan(fmt, examples, tokenizer, cfg)
    n_micro = max(1, (cfg.steps or 1) * cfg.grad_accum)
    out = []
    for micro in random.Random(cfg.seed).sample(range(n_micro), min(sample, n_micro)):
        idx = _micro_batch_indices(len(examples), micro, cfg.batch_size, 0, 1, cfg.seed, plan)
        batch = fmt.collate([examples[i] for i in idx], tokenizer)
        masks = [v for k, v in batch.items() if k.endswith("mask") and hasattr(v, "shape")]
        out.append(
            {
                "rows": len(idx),
                "tokens": int(sum(np.prod(m.shape) for m in masks)),
                "longest": int(max(m.shape[-1] for m in masks)),
            }
        )
    return out


#: a plan reads a model's config and tokenizer, never its weights: files above this stay in the store
CONFIG_FILE_BYTES = 50 * 2**20


def plan_rows(spec, *, gpu_memory_gib: float | None, gpu: str | None, mfu: float) -> pd.DataFrame:
    """One row per (model, condition): shape, memory per rank, fit, largest batch, time."""
    from transformers import AutoTokenizer

    from embodiment.models.loading import locate
    from embodiment.training.plan import model_shape

    rows = []
    for model in spec.models:
        folder = (
            local_copy(model, max_file_bytes=CONFIG_FILE_BYTES)
            if is_uri(model)
            else locate(model, allow_download=spec.allow_download)[0]
        )
        shape = model_shape(str(folder), trust_remote_code=spec.trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=spec.trust_remote_code)
        for condition in spec.conditions:
            rows.append(_condition_row(spec, model, condition, shape, tokenizer, gpu_memory_gib, gpu, mfu))
    return pd.DataFrame(rows)


def _condition_row(spec, model: str, condition, shape, tokenizer, gpu_memory_gib, gpu, mfu) -> dict:
    from embodiment.formats import get_format
    from embodiment.training.plan import step_flops, training_memory
    from grid.data import training_data
    from grid.tuning import expected_trials, worker_config

    world = spec.resources.workers
    plain = worker_config(spec, {"condition": condition.name, "model": model})
    cfg = plain["train"]
    data = training_data(plain["condition"], plain["norms"], spec.seed, spec.mcq)
    fmt = get_format(cfg.format).configure(data).with_options(cfg)
    sizes = micro_batches(fmt, data, tokenizer, cfg)
    big = max(sizes, key=lambda b: b["tokens"])
    logits = big["longest"] if cfg.format == "mcq" else 1  # a choice's every token is scored

    def memory(scale: float):
        return training_memory(
            shape,
            precision=cfg.precision,
            lora=cfg.lora,
            rank=cfg.lora_rank,
            zero_stage=cfg.zero_stage,
            world=world,
            tokens=int(big["tokens"] * scale),
            longest=big["longest"],
            rows=max(1, int(big["rows"] * scale)),
            checkpointing=cfg.gradient_checkpointing,
            logits_per_row=logits,
            offload_optimizer=cfg.offload_optimizer,
        )

    plan = memory(1.0)
    tokens = sum(b["tokens"] for b in sizes) / len(sizes) * cfg.grad_accum * (cfg.steps or 0)
    flops = step_flops(shape, lora=cfg.lora, tokens=tokens, checkpointing=cfg.gradient_checkpointing)
    budget = gpu_memory_gib * GIB if gpu_memory_gib else None
    largest = None
    if budget:
        largest = 0
        while largest < 4096 and memory((largest + 1) / cfg.batch_size).total <= budget:
            largest += 1 if largest < 16 else largest
    if spec.resources.gpus_per_worker > 0 or gpu:
        seconds = flops / (ACCELERATORS[(gpu or "h100").lower()][0] * 1e12 * mfu * world)
    else:
        seconds = flops / 1e9 * CPU_SECONDS_PER_GFLOP / world
    return {
        "model": model,
        "condition": condition.name,
        "params_M": shape.params / 1e6,
        "trainable_M": shape.trainable(cfg.lora, cfg.lora_rank) / 1e6,
        "micro_batch": cfg.batch_size,
        "padded_tokens": big["tokens"],
        "weights_GiB": plan.weights / GIB,
        "grads_GiB": plan.gradients / GIB,
        "optimizer_GiB": plan.optimizer / GIB,
        "activations_GiB": plan.activations / GIB,
        "per_rank_GiB": plan.total / GIB,
        "fits": None if budget is None else plan.total <= budget,
        "largest_batch": largest,
        "train_min_per_trial": seconds / 60,
        "trials": expected_trials(spec) // max(1, len(spec.conditions) * len(spec.models)),
    }


def plan_total(frame: pd.DataFrame, concurrent: int) -> str:
    """The one-line total: training time of every trial, trials side by side where the job allows."""
    minutes = float((frame["train_min_per_trial"] * frame["trials"]).sum()) / max(1, concurrent)
    worst = frame.loc[frame["per_rank_GiB"].idxmax()]
    return (
        f"plan: {int(frame['trials'].sum())} trial(s), about {minutes:.0f} min of training "
        f"({concurrent} at a time); the largest step needs {worst['per_rank_GiB']:.1f} GiB per rank "
        f"({worst['condition']}, {worst['model']})"
    )


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the plan of a job file."""
    from grid.job_file import load_job

    spec = load_job(args.job)
    if args.gpu and args.gpu.lower() not in ACCELERATORS:
        raise InputError(f"unknown accelerator {args.gpu!r}; known: {', '.join(ACCELERATORS)}", key="--gpu")
    memory = args.gpu_memory or (ACCELERATORS[args.gpu.lower()][1] if args.gpu else None)
    frame = plan_rows(spec, gpu_memory_gib=memory, gpu=args.gpu, mfu=args.mfu)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(plan_total(frame, spec.resources.max_concurrent_trials or 1))
    return 0


def add_plan(sub) -> None:
    """Register ``egrid plan``."""
    p = sub.add_parser(
        "plan",
        help="memory per rank and time of a job's training, before it starts",
        description="Per model and condition: parameters (from the config, nothing loaded), memory "
        "per rank of a training step (weights, gradients, optimizer, activations) under "
        "the job's precision, ZeRO stage, LoRA and checkpointing, whether it fits, the "
        "largest batch that does, and the training time.",
    )
    p.add_argument("job")
    p.add_argument("--gpu-memory", type=float, default=None, metavar="GiB", help="memory of one accelerator")
    p.add_argument("--gpu", default=None, help=f"accelerator for the time estimate ({', '.join(ACCELERATORS)})")
    p.add_argument("--mfu", type=float, default=DEFAULT_MFU, help="fraction of peak FLOPs reached [%(default)s]")
    p.set_defaults(func=cmd_plan)

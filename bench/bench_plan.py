"""egrid plan's training time against a measured training run on this machine.

Trains the embedded SmolLM2-135M with a shipped job's recipe (its first condition, the
job's own micro-batches through ``embodiment.training.train``, DeepSpeed ZeRO-0 on CPU)
for ``--steps`` steps and prints the measured seconds per step beside the plan's, their
ratio, and the CPU throughput (GFLOP/s of the plan's FLOP count) that the measurement
implies: the figure behind ``grid.cli_plan.CPU_SECONDS_PER_GFLOP``.

Usage: python bench/bench_plan.py [--job jobs/finetune.yaml] [--steps 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="jobs/finetune.yaml")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    from embodiment.formats import get_format
    from embodiment.models import load_model
    from embodiment.models.loading import locate
    from embodiment.training import train
    from embodiment.training.plan import model_shape, step_flops
    from grid.cli_plan import CPU_SECONDS_PER_GFLOP, micro_batches
    from grid.data import training_data
    from grid.job_file import load_job
    from grid.tuning import worker_config

    spec = load_job(args.job)
    condition, model = spec.conditions[0], spec.models[0]
    plain = worker_config(spec, {"condition": condition.name, "model": model})
    cfg = plain["train"].model_copy(update={"steps": args.steps, "checkpoint_every": 0, "warmup": 0.0})
    data = training_data(plain["condition"], plain["norms"], spec.seed, spec.mcq)
    lm = load_model(model, device="cpu", dtype="float32")
    fmt = get_format(cfg.format).configure(data).with_options(cfg)
    sizes = micro_batches(fmt, data, lm.tokenizer, cfg, sample=args.steps)
    tokens = sum(b["tokens"] for b in sizes) / len(sizes) * cfg.grad_accum
    flops = step_flops(
        model_shape(str(locate(model)[0])), lora=cfg.lora, tokens=tokens, checkpointing=cfg.gradient_checkpointing
    )
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = train(cfg, lm.model, lm.tokenizer, data, out)
        seconds = time.perf_counter() - started
    per_step = result.seconds / max(1, result.steps) if result.seconds else seconds / args.steps
    planned = flops / 1e9 * CPU_SECONDS_PER_GFLOP
    print(f"job {args.job}, condition {condition.name}: {result.steps} steps, {tokens:.0f} padded tokens a step")
    print(f"measured {per_step:.2f} s/step; plan {planned:.2f} s/step; measured / plan = {per_step / planned:.2f}")
    print(
        f"implied CPU throughput: {flops / 1e9 / per_step:.1f} GFLOP/s (the plan assumes {1 / CPU_SECONDS_PER_GFLOP:.1f})"
    )


if __name__ == "__main__":
    main()

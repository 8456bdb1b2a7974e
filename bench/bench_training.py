"""Claim 5 (GPU): tokens/s and model-FLOPs utilisation of full and LoRA fine-tuning of a
~0.5B-parameter model (Qwen2-0.5B shape, random weights) through the project's DeepSpeed
path (``embodiment.training.deepspeed_config`` + ``deepspeed.initialize``) vs the same
loop run bare (torch AMP bf16 + fused AdamW), measured in one run on the same batches.
DeepSpeed runs twice: precision bf16 (bf16 weights, DeepSpeed's fp32 master copies) and
amp_bf16 (fp32 weights under its torch_autocast, the bare loop's arithmetic).

Usage: python bench/bench_training.py [--batch 16] [--seq 1024] [--steps 20] [--tiny]
Prints one table and ratio lines (DeepSpeed / bare); --tiny runs a small model on CPU to
check the script itself.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import torch

# bf16 dense peak of the GPUs we report on (TFLOP/s, no sparsity).
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0}


def build_model(tiny: bool, device: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if tiny:
        cfg = Qwen2Config(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=1000,
            max_position_embeddings=512,
            tie_word_embeddings=True,
        )
    else:  # the Qwen2-0.5B shape
        cfg = Qwen2Config(
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=4096,
            tie_word_embeddings=True,
        )
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg).to(device), cfg


def flops_per_token(cfg, n_matmul: int, seq: int, lora: bool) -> float:
    """Model FLOPs per token (PaLM appendix B): 6N + 12·L·H·S for training; with frozen
    base weights (LoRA) the weight gradients are skipped: 4N + 8·L·H·S."""
    attn = cfg.num_hidden_layers * cfg.hidden_size * seq
    return (4 * n_matmul + 8 * attn) if lora else (6 * n_matmul + 12 * attn)


def run(mode: str, method: str, args, device: str) -> dict:
    from peft import LoraConfig, get_peft_model

    model, cfg = build_model(args.tiny, device)
    n_matmul = sum(p.numel() for n, p in model.named_parameters() if "norm" not in n)  # tied head = embedding matrix
    if method == "lora":
        model = get_peft_model(
            model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
        )
    model.config.use_cache = False
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device == "cuda"
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=fused)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=g) for _ in range(4)]
    if mode.startswith("deepspeed"):
        import deepspeed

        from embodiment.training import TrainConfig, deepspeed_config, ensure_distributed

        ensure_distributed("nccl" if device == "cuda" else "gloo")
        precision = "amp_bf16" if mode == "deepspeed-amp" else "bf16" if device == "cuda" else "fp32"
        tc = TrainConfig(batch_size=args.batch, precision=precision, zero_stage=args.zero)
        engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=deepspeed_config(tc))

        def step(ids):
            loss = engine(input_ids=ids, labels=ids).loss
            engine.backward(loss)
            engine.step()
            return loss
    else:
        amp = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda")

        def step(ids):
            with amp:
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(args.warmup):
        step(batches[i % 4].to(device))
    sync()
    start = time.perf_counter()
    for i in range(args.steps):
        loss = step(batches[i % 4].to(device))
    sync()
    seconds = time.perf_counter() - start
    tokens = args.steps * args.batch * args.seq
    out = {
        "mode": mode,
        "method": method,
        "tokens_per_s": tokens / seconds,
        "step_s": seconds / args.steps,
        "loss": float(loss),
        "flops_per_token": flops_per_token(cfg, n_matmul, args.seq, method == "lora"),
        "params_m": n_matmul / 1e6,
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan"),
    }
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--zero", type=int, default=0)
    parser.add_argument("--methods", default="full,lora")
    parser.add_argument("--tiny", action="store_true", help="small model on CPU: checks the script, no figures")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.tiny:
        print(
            "bench_training: needs a CUDA GPU (claim 5 is about GPU training); skipped. --tiny checks the script on CPU."
        )
        return
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.tiny:
        args.batch, args.seq, args.steps, args.warmup = 2, 32, 3, 1
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), float("nan")) * 1e12
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch} x seq {args.seq}; {args.steps} timed steps")
    rows = []
    for method in args.methods.split(","):
        for mode in ("bare", "deepspeed", "deepspeed-amp"):  # same batches, same optimizer, one after the other
            r = run(mode, method, args, device)
            r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / peak
            rows.append(r)
    print(
        f"{'method':<6} {'loop':<13} {'params(M)':>9} {'tokens/s':>10} {'step (s)':>9} {'MFU':>6} {'mem GB':>7} {'loss':>7}"
    )
    for r in rows:
        print(
            f"{r['method']:<6} {r['mode']:<13} {r['params_m']:9.0f} {r['tokens_per_s']:10.0f} {r['step_s']:9.3f} "
            f"{r['mfu']:6.1%} {r['peak_mem_gb']:7.1f} {r['loss']:7.3f}"
        )
    for method in args.methods.split(","):
        bare = next(r for r in rows if r["method"] == method and r["mode"] == "bare")
        for mode in ("deepspeed", "deepspeed-amp"):
            ds = next(r for r in rows if r["method"] == method and r["mode"] == mode)
            print(
                f"ratio {method}: {mode}/bare tokens/s = {ds['tokens_per_s'] / bare['tokens_per_s']:.3f} "
                f"(target >= 0.90); MFU {mode} {ds['mfu']:.1%}"
            )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

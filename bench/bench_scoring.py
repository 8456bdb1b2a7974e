"""Claim 1: rating prompts/s of the one-forward-pass scorer with prefix KV reuse vs the
same forward pass without reuse vs generate-and-parse (the study's way), on SmolLM2-135M,
same prompts, same batch size, measured in one run.

Usage: python bench/bench_scoring.py [--concepts 128] [--dims 6] [--batch 32]
       [--model smollm2-135m | PATH] [--random-weights] [--device cpu|cuda] [--dtype fp32|bf16]
--random-weights builds the model from the reference's config with random weights (same
shapes, same tokenizer, same speed): used on machines where the weights cannot travel.
Targets: >= 10x vs generate-and-parse, >= 2x from prefix reuse (CPU).
Our scorer runs its linears on the CPU GEMM that embodiment.cpu_linears picks (oneDNN
where it is faster); generate-and-parse is timed as the study ran it (stock kernels) and,
where the backends differ, again on ours, so the kernel's share and the method's share of
the ratio can be told apart.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from embodiment.cpu_linears import chosen_backend, inference_linears
from embodiment.dimensions import LANCASTER_SENSORY
from embodiment.scoring import generate_ratings, score_ratings

CONCEPTS = ["apple", "thunder", "velvet", "lemon", "kick", "fog", "whisper", "rose", "hammer", "honey", "siren", "ice",
            "pepper", "silk", "smoke", "bell", "garlic", "feather", "sunset", "drum", "vinegar", "moss", "candle", "gravel"]


def load(args):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if args.random_weights:
        from embodiment.models.loading import locate

        where = locate(args.model)
        path = where[0]
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    else:
        from embodiment.models import load_model

        lm = load_model(args.model, device="cpu")
        model, tokenizer = lm.model, lm.tokenizer
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    return model.to(args.device, dtype).eval(), tokenizer


def timed(fn, device):
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--concepts", type=int, default=96)
    parser.add_argument("--dims", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=6)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    args = parser.parse_args()
    model, tok = load(args)
    concepts = [f"{CONCEPTS[i % len(CONCEPTS)]}{'' if i < len(CONCEPTS) else ' ' + str(i // len(CONCEPTS))}"
                for i in range(args.concepts)]
    dims = list(LANCASTER_SENSORY)[: args.dims]
    n = len(concepts) * len(dims)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'cpu'} x{torch.get_num_threads()} threads"
    backend = chosen_backend() if args.device == "cpu" and args.dtype == "fp32" else "stock"
    print(f"device: {name}; linears: {backend}; model {args.model}{' (random weights)' if args.random_weights else ''} {args.dtype}; "
          f"{len(concepts)} concepts x {len(dims)} dimensions = {n} prompts; batch {args.batch}")
    with torch.inference_mode():
        for reuse in (True, False):  # warm-up at the timed shapes (kernels, allocator)
            score_ratings(model, tok, concepts[: args.batch], dims[:1], batch_size=args.batch, reuse_prefix=reuse)
        generate_ratings(model, tok, concepts[: args.batch], dims[:1], batch_size=args.batch, max_new_tokens=2)
        reused, t_reuse = timed(lambda: score_ratings(model, tok, concepts, dims, batch_size=args.batch, reuse_prefix=True), args.device)
        plain, t_plain = timed(lambda: score_ratings(model, tok, concepts, dims, batch_size=args.batch, reuse_prefix=False), args.device)
        generated, t_gen = timed(lambda: generate_ratings(model, tok, concepts, dims, batch_size=args.batch,
                                                          max_new_tokens=args.max_new_tokens), args.device)
        t_gen_ours = None
        if backend != "stock":
            with inference_linears(model, backend):
                generate_ratings(model, tok, concepts[: args.batch], dims[:1], batch_size=args.batch, max_new_tokens=2)
                _, t_gen_ours = timed(lambda: generate_ratings(model, tok, concepts, dims, batch_size=args.batch,
                                                               max_new_tokens=args.max_new_tokens), args.device)
    diff = float(np.max(np.abs(reused["expected"].to_numpy() - plain["expected"].to_numpy())))
    parsed = float(generated["parsed"].notna().mean())
    print(f"{'method':<34} {'seconds':>8} {'prompts/s':>10}")
    for label, t in (("one pass + prefix KV reuse (ours)", t_reuse), ("one pass, no prefix reuse", t_plain),
                     (f"generate {args.max_new_tokens} tokens + parse (study)", t_gen),
                     (f"same, on {backend} linears", t_gen_ours)):
        if t is not None:
            print(f"{label:<34} {t:8.2f} {n / t:10.1f}")
    print(f"max |reuse - plain| expected rating: {diff:.2e}; generated answers with a parsable number: {parsed:.0%}")
    print(f"ratio vs generate-and-parse: {t_gen / t_reuse:.1f}x (target >= 10x); "
          f"ratio from prefix reuse: {t_plain / t_reuse:.1f}x (target >= 2x)")
    if t_gen_ours is not None:
        print(f"ratio vs generate-and-parse on the same {backend} linears: {t_gen_ours / t_reuse:.1f}x "
              f"(the method's share; {t_gen / t_gen_ours:.2f}x of the stock time is the kernel's)")


if __name__ == "__main__":
    main()

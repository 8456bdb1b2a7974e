"""Where the rating scorer's time goes: torch's profiler over the reuse path (a row per
concept, and suffixes packed several a row) and the plain pass, on SmolLM2-135M.

Prints, per path, the share of time in each kind of work (linears, attention, the KV
cache's copies, the LM head, everything else) and the top operators, so a change to the
scorer can be aimed at what the profile says rather than at a guess.

Usage: python bench/profile_scoring.py [--concepts 64] [--dims 2] [--batch 32] [--pack 1,8]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from embodiment.cpu_linears import chosen_backend
from embodiment.dimensions import LANCASTER_SENSORY
from embodiment.models import load_model
from embodiment.scoring import score_ratings

#: operator name fragments -> the kind of work they are
KINDS = {
    "linear": ("linear", "addmm", "mm", "matmul", "mkldnn"),
    "attention": ("attention", "softmax", "bmm", "baddbmm"),
    "cache copies": ("cat", "copy_", "index_select", "repeat_interleave", "expand", "clone", "contiguous", "slice"),
    "elementwise": ("mul", "add", "silu", "rsqrt", "pow", "mean", "neg", "sin", "cos", "to", "where", "masked_fill"),
}


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, parts in KINDS.items():
        if any(p in low for p in parts):
            return kind
    return "other"


def profiled(fn) -> tuple[float, list]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        fn()
        wall = time.perf_counter() - start
    return wall, prof.key_averages()


def report(label: str, wall: float, events, top: int) -> None:
    ops = [e for e in events if e.key.startswith("aten::") or e.key.startswith("mkldnn::")]
    total = sum(e.self_cpu_time_total for e in ops) / 1e6
    by_kind: dict[str, float] = {}
    for e in ops:
        by_kind[kind_of(e.key)] = by_kind.get(kind_of(e.key), 0.0) + e.self_cpu_time_total / 1e6
    print(
        f"\n== {label}: {wall:.2f} s wall, {total:.2f} s in operators ({total / wall:.0%}), "
        f"{wall - total:.2f} s outside them (Python, dispatch, waits)"
    )
    for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"   {kind:<14} {seconds:6.2f} s  {seconds / wall:5.0%}")
    for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"   {e.key:<40} {e.self_cpu_time_total / 1e6:6.2f} s  {e.count:6d} calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--concepts", type=int, default=64)
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--pack", default="1,8")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    lm = load_model(args.model, device="cpu")
    model, tok = lm.model.eval(), lm.tokenizer
    concepts = [f"thing {i}" for i in range(args.concepts)]
    dims = list(LANCASTER_SENSORY)[: args.dims]
    print(
        f"linears: {chosen_backend()}; {args.concepts} concepts x {len(dims)} dims, batch {args.batch}, "
        f"{torch.get_num_threads()} threads"
    )
    runs = {f"reuse, {k} a row": dict(suffixes_per_row=int(k)) for k in args.pack.split(",")}
    runs["plain (no reuse)"] = dict(reuse_prefix=False)
    with torch.inference_mode():
        for options in runs.values():  # warm-up
            score_ratings(model, tok, concepts[: args.batch], dims[:1], batch_size=args.batch, **options)
        for label, options in runs.items():
            wall, events = profiled(lambda: score_ratings(model, tok, concepts, dims, batch_size=args.batch, **options))
            report(label, wall, events, args.top)


if __name__ == "__main__":
    main()

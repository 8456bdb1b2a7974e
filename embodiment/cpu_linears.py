"""Which GEMM runs a model's fp32 ``nn.Linear`` layers during CPU inference.

Stock torch sends fp32 linears to MKL's sgemm, which on AMD CPUs takes its AVX2 code
path even where the CPU has AVX-512; oneDNN, also inside torch, uses AVX-512 there.
Measured on the 2-core AMD EPYC with AVX-512 (2026-11-25): 2.3x the GEMM throughput at
the scorer's shapes (128 x 576 x 1536: 199 -> 452 GFLOP/s) and 1.9x the whole scoring
forward of SmolLM2-135M, with results equal to fp32 rounding (largest logit difference
7e-5). On CPUs where oneDNN is not faster, the stock path stays.

:func:`inference_linears` swaps the forward of every plain ``nn.Linear`` for the
duration of a ``with`` block and restores it afterwards. Anything that needs gradients,
another dtype or device, or DeepSpeed-partitioned weights goes through the stock
``F.linear`` unchanged, so training is never affected.

The backend is chosen by ``EGRID_CPU_LINEARS``: ``auto`` (default), ``onednn`` or
``stock``. ``auto`` is decided once per machine (CPU model, its ISA as torch dispatches
it, torch version) and kept in the user cache (``cpu_linears.json``), so every later
process, busy machine or not, makes the same choice: a neighbour that slows one probe
would otherwise flip it (issue "Scoring at the machine's token rate"). The one probe
times the two GEMMs in interleaved pairs, in alternating order, and decides on the
median of the pairs' ratios: oneDNN where it is at least 10 % faster.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from embodiment.errors import InputError

ENV = "EGRID_CPU_LINEARS"
_MARK = "_egrid_linear_backend"


def _onednn_op():
    """oneDNN's linear (the one torch's own inductor uses on CPU), or None in builds without it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


# backend name -> linear(x, weight, bias); "auto" is resolved to one of these.
BACKENDS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]] = {
    "stock": F.linear,
    "onednn": _onednn_linear,
}


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_ratio(
    candidate: Callable[[], object],
    reference: Callable[[], object],
    rounds: int,
    clock: Callable[[Callable[[], object]], float] = _seconds,
) -> float:
    """Median over ``rounds`` interleaved pairs of candidate time / reference time, the
    order alternating each round: a burst of contention slows the calls of one or two
    pairs, which the median ignores, where one minimum per side could pick a lucky call."""
    candidate(), reference()  # first-call set-up (oneDNN builds its kernel) is not the speed
    ratios = []
    for i in range(rounds):
        if i % 2:
            ref, cand = clock(reference), clock(candidate)
        else:
            cand, ref = clock(candidate), clock(reference)
        ratios.append(cand / ref if ref > 0 else float("inf"))
    return statistics.median(ratios)


def _probe_ratio(rounds: int = 15) -> float | None:
    """oneDNN time / stock time at a scorer-like shape (128 tokens, 576 -> 1536); None
    where oneDNN cannot run."""
    if _onednn_op() is None:
        return None
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 576, generator=gen)
    w = torch.randn(1536, 576, generator=gen)
    try:
        return _median_ratio(lambda: _onednn_linear(x, w, None), lambda: F.linear(x, w), rounds)
    except RuntimeError:  # a build whose oneDNN cannot run this CPU's kernels
        return None


def machine_key() -> str:
    """What the choice depends on: the CPU model, the ISA torch dispatches to, torch's version."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} | {torch.backends.cpu.get_cpu_capability()} | torch {torch.__version__}"


def _choices_file():
    from embodiment.cache import cache_root

    return cache_root() / "cpu_linears.json"


@functools.cache
def _auto_backend() -> str:
    """This machine's choice: from the cache, else probed once and kept there."""
    path, key = _choices_file(), machine_key()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), dict) and known[key].get("backend") in BACKENDS:
        return known[key]["backend"]
    ratio = _probe_ratio()
    backend = "onednn" if ratio is not None and ratio < 0.9 else "stock"
    known[key] = {"backend": backend, "onednn_over_stock": ratio, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        from embodiment.tables import write_text_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json.dumps(known, indent=1), path)
    except OSError:  # a read-only cache: this process keeps its choice, the next one probes again
        pass
    return backend


def chosen_backend(wanted: str | None = None) -> str:
    """The backend asked for (``wanted``, else ``EGRID_CPU_LINEARS``), ``auto`` resolved on this CPU.

    Raises:
        InputError: the request names no backend, or asks for oneDNN where torch has none.
    """
    where = {"key": "backend"} if wanted else {"source": "environment", "key": ENV}
    wanted = (wanted or os.environ.get(ENV, "auto")).strip().lower() or "auto"
    if wanted == "auto":
        return _auto_backend()
    if wanted not in BACKENDS:
        raise InputError(f"expected one of auto, {', '.join(BACKENDS)}; got {wanted!r}", **where)
    if wanted == "onednn" and _onednn_op() is None:
        raise InputError("this torch build has no oneDNN linear; use auto or stock", **where)
    return wanted


def _eligible(model: torch.nn.Module) -> bool:
    """fp32 weights on the CPU that are not DeepSpeed partitions (ZeRO-3 gathers them in its own linear)."""
    params = list(model.parameters())
    return (
        bool(params)
        and all(p.device.type == "cpu" and not hasattr(p, "ds_id") for p in params)
        and any(p.dtype == torch.float32 for p in params)
    )


def _forward_with(linear: Callable) -> Callable:
    def forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if (
            x.dtype != torch.float32
            or w.dtype != torch.float32
            or x.device.type != "cpu"
            or x.dim() < 2
            or x.numel() == 0
            or (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
        ):
            return F.linear(x, w, self.bias)
        return linear(x, w, self.bias)

    return forward


@contextmanager
def inference_linears(model: torch.nn.Module, backend: str | None = None) -> Iterator[str]:
    """Run ``model``'s plain ``nn.Linear`` layers on the fastest CPU GEMM inside the block.

    Args:
        model: any module (plain or PEFT-wrapped); only exact ``nn.Linear`` instances are
            touched, subclasses (quantised layers and the like) keep their own forward.
        backend: ``auto``, ``stock`` or ``onednn``; default from ``EGRID_CPU_LINEARS`` (``auto``).

    Yields:
        The backend in effect: ``stock`` where the model is not an fp32 CPU model, the
        enclosing block's where one is already active on this model.
    """
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    enclosing = {m.__dict__[_MARK] for m in linears if _MARK in m.__dict__}
    if enclosing:  # an outer block already swapped them: its choice stays
        yield enclosing.pop()
        return
    if not linears or not _eligible(model):  # checked first: a GPU model never pays for the probe
        yield "stock"
        return
    name = chosen_backend(backend)
    if name == "stock":
        yield name
        return
    forward = _forward_with(BACKENDS[name])
    for m in linears:
        m.forward = types.MethodType(forward, m)
        m.__dict__[_MARK] = name
    try:
        yield name
    finally:
        for m in linears:
            m.__dict__.pop("forward", None)
            m.__dict__.pop(_MARK, None)


def with_inference_linears(fn: Callable) -> Callable:
    """Decorator for inference functions whose first argument is the model."""

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with inference_linears(model):
            return fn(model, *args, **kwargs)

    return wrapper

"""What the A/B benches share (imported by bench_vocab_head and bench_length_batching;
``make bench`` runs only ``bench_*.py``): the study's colour questions, an even spread of
a long list, and timing ours against its peer in alternating rounds."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

from embodiment.datasets import resolve
from embodiment.errors import InputError

#: the study's colour questions, a named dataset's table (egrid data fetch wu2026)
MCQ_SOURCE = "wu2026:mcq-train"


def spread(values: list, count: int) -> list:
    """``count`` values taken evenly across ``values`` (not its first ``count``)."""
    return values[:: max(1, len(values) // count)][:count]


def colour_questions(count: int, *, spread_over_file: bool, bench: str) -> list[dict]:
    """``count`` of the study's colour questions, each with an ``index``.

    Args:
        count: questions wanted.
        spread_over_file: take them evenly across the file (its later questions are
            longer) instead of its first ``count``.
        bench: the calling script's name, for the error when the file is missing.
    """
    try:
        found = resolve(MCQ_SOURCE)
    except InputError as exc:
        raise SystemExit(f"{bench}: the colour questions ({MCQ_SOURCE}) are not at hand: {exc}") from None
    every = json.loads(found.read_text(encoding="utf-8"))
    items = spread(every, count) if spread_over_file else every[:count]
    for i, it in enumerate(items):
        it.setdefault("index", i)
    return items


def alternate(
    ours: Callable[[], object],
    peer: Callable[[], object],
    rounds: int,
    check: Callable[[object, object], None] | None = None,
):
    """Time ``ours`` and ``peer`` in alternating rounds after one warm-up call of ours
    (first-call allocations and kernel choice), so drift in the machine's speed hits both.
    ``check(ours_output, peer_output)``, where given, runs after every round.

    Returns:
        (median seconds of ours, median seconds of the peer, ours' last output, the peer's last output).
    """
    ours()
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    out = {}
    for _ in range(rounds):
        for side, fn in (("ours", ours), ("peer", peer)):
            start = time.perf_counter()
            out[side] = fn()
            times[side].append(time.perf_counter() - start)
        if check:
            check(out["ours"], out["peer"])
    return statistics.median(times["ours"]), statistics.median(times["peer"]), out["ours"], out["peer"]

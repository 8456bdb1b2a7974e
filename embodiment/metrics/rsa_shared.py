"""Bootstrap RSAs queued and run together, one human side a draw for all that share it.

An aggregate compares many models (trials, layers, probes) with the same human RDM over
the same concepts, and every RSA of one seed draws the same resamples. Half of a Spearman
draw is the human side (its weights and ranks, :func:`~embodiment.metrics.rsa_bootstrap.human_draw`);
inside :class:`SharedDraws` it is computed once a draw for every queued model side that
shares both the human RDM and the resamples. The values are those of
:meth:`~embodiment.metrics.rsa_bootstrap.ResampledRSA.draws`, arithmetic for arithmetic.

While the context is open, :func:`embodiment.metrics.rsa` returns a Spearman RSA's CI
bounds as :class:`PendingBound` placeholders; they are computed when the context closes,
and :meth:`SharedDraws.resolved` writes them into a table's columns as floats.
"""

from __future__ import annotations

import contextvars
import hashlib
from dataclasses import dataclass, field

import numpy as np

from embodiment.metrics.bootstrap import percentile_interval
from embodiment.metrics.rsa_bootstrap import (
    MAX_THREADS,
    _cores,
    _RankedSide,
    _Workspace,
    human_draw,
    in_parts,
    model_draw,
    positions_in,
)

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("shared_rsa_draws", default=None)

#: queued model sides beyond this many bytes are run at once (memory stays bounded)
MAX_QUEUED_BYTES = 1 << 30


@dataclass(eq=False)
class _Job:
    side_a: _RankedSide
    b_of_a: np.ndarray
    ci: float
    interval: tuple[float, float] | None = None


@dataclass(eq=False)
class _Group:
    """Model sides that share a human RDM and the resamples (as concept counts)."""

    side_b: _RankedSide
    counts: np.ndarray
    jobs: list = field(default_factory=list)


class PendingBound:
    """A CI bound that :class:`SharedDraws` fills in when it closes (``float()`` of it
    before then is an error)."""

    __slots__ = ("job", "high")

    def __init__(self, job: _Job, high: bool):
        self.job, self.high = job, high

    def __float__(self) -> float:
        if self.job.interval is None:
            raise RuntimeError("a shared RSA bootstrap was read before its SharedDraws context closed")
        return float(self.job.interval[int(self.high)])

    def __deepcopy__(self, memo):  # dataclasses.asdict copies fields: keep the link to the job
        return self

    def __repr__(self) -> str:
        return f"PendingBound({'high' if self.high else 'low'})"


def active() -> "SharedDraws | None":
    """The open :class:`SharedDraws`, if any (in this thread's context)."""
    return _ACTIVE.get()


def _digest(values: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(values).view(np.uint8), digest_size=16).digest()


class SharedDraws:
    """A context in which Spearman RSA bootstraps are queued and run together on closing.

    Args:
        threads: draws run at once (default: one per core, up to
            :data:`~embodiment.metrics.rsa_bootstrap.MAX_THREADS`).
        max_bytes: queued model sides beyond this are run before more are queued.
    """

    def __init__(self, threads: int | None = None, max_bytes: int = MAX_QUEUED_BYTES):
        self.threads, self.max_bytes = threads, max_bytes
        self.groups: dict[tuple, _Group] = {}
        self.queued_bytes = 0
        self._token = None

    def __enter__(self) -> "SharedDraws":
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, kind, error, trace) -> None:
        _ACTIVE.reset(self._token)
        if kind is None:
            self.run()

    @classmethod
    def unless_open(cls) -> "SharedDraws | _Outer":
        """A new context, or where one is open already, a stand-in that leaves the queued
        draws (and resolving their tables) to that one."""
        return cls() if active() is None else _Outer()

    def add(
        self, a: np.ndarray, b: np.ndarray, n: int, n_boot: int, rng: np.random.Generator, ci: float
    ) -> tuple[PendingBound, PendingBound]:
        """Queue the bootstrap of one Spearman RSA of condensed RDMs ``a`` (model) and ``b``
        (human) over ``n`` concepts: its resamples are drawn from ``rng`` now, as
        :meth:`~embodiment.metrics.rsa_bootstrap.ResampledRSA.draws` draws them."""
        counts = np.stack([np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(n_boot)])
        key = (n, _digest(np.asarray(b, dtype=np.float64)), _digest(counts))
        rows, cols = np.triu_indices(n, 1)
        small = np.int16 if n < 2**15 else np.int32
        rows, cols = rows.astype(small), cols.astype(small)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(_RankedSide(np.asarray(b, dtype=np.float64), rows, cols), counts)
        side_a = _RankedSide(np.asarray(a, dtype=np.float64), rows, cols)
        job = _Job(side_a, positions_in(group.side_b, side_a), ci)
        side_a.order = None  # only its rows, columns and tie groups are needed from here on
        group.jobs.append(job)
        self.queued_bytes += sum(x.nbytes for x in (side_a.rows, side_a.cols, job.b_of_a))
        if self.queued_bytes > self.max_bytes:
            self.run()
        return PendingBound(job, False), PendingBound(job, True)

    def run(self) -> None:
        """Run every queued group's draws and fill in its jobs' intervals."""
        for group in self.groups.values():
            values = self._draws(group)
            for job, column in zip(group.jobs, values.T):
                job.interval = percentile_interval(column, job.ci)
        self.groups.clear()
        self.queued_bytes = 0

    def _draws(self, group: _Group) -> np.ndarray:
        """(draws, jobs) RSA values: per draw, the human side once, then each model side."""
        counts = group.counts.astype(np.float64)
        threads = max(1, min(self.threads or _cores(), MAX_THREADS, len(counts)))
        out = np.empty((len(counts), len(group.jobs)))

        def run(part: int) -> None:
            space = _Workspace.of(group.side_b.rows.size)
            for k in range(part, len(counts), threads):
                human = human_draw(group.side_b, counts[k], space)
                for j, job in enumerate(group.jobs):
                    out[k, j] = model_draw(job.side_a, job.b_of_a, counts[k], human, space)

        in_parts(run, threads)
        return out

    @staticmethod
    def resolved(frame):
        """``frame`` (a pandas DataFrame) with every :class:`PendingBound` in it replaced by its value."""
        for column in frame.select_dtypes(include="object").columns:
            if frame[column].map(lambda v: isinstance(v, PendingBound)).any():
                frame[column] = (
                    frame[column].map(lambda v: float(v) if isinstance(v, PendingBound) else v).astype(float)
                )
        return frame


class _Outer:
    """:meth:`SharedDraws.unless_open` inside an open context: the outer one runs the
    draws when it closes and resolves the tables it is given then."""

    def __enter__(self) -> "_Outer":
        return self

    def __exit__(self, *exc) -> None:
        return None

    @staticmethod
    def resolved(frame):
        return frame

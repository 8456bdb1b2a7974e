"""Which examples go into which batch: a seeded permutation per epoch (a function of seed
and step, so a resumed run continues exactly), whole units, and windows sorted by length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embodiment.formats import TaskFormat
from embodiment.training.config import TrainConfig

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
        window = perm[start : start + LENGTH_WINDOW * batch]
        window = window[np.argsort(-plan.keys[window], kind="stable")]
        for i in range(0, len(window), batch):
            (full if len(window[i : i + batch]) == batch else partial).append(window[i : i + batch])
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
    return BatchPlan(
        keys=np.array([rank[g] for g in groups], dtype=np.int64) * (int(lengths.max(initial=0)) + 1) + lengths
    )


def _micro_batch_indices(
    n: int, micro: int, batch: int, rank: int, world: int, seed: int, plan: BatchPlan | None = None
) -> np.ndarray:
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

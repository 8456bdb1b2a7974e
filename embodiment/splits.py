"""Seeded train/test splits by concept, recorded so that a job can be rerun exactly."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embodiment.errors import InputError
from embodiment.norms import normalise_word


@dataclass(frozen=True)
class Split:
    """A train/test partition of concepts.

    Attributes:
        train: concept labels for training, in source order.
        test: held-out concept labels, in source order.
        seed: the seed that drew it.
        test_fraction: the requested share of held-out concepts (groups, not rows).
        digest: a hash of both lists; two runs with equal digests saw the same split.
    """

    train: tuple[str, ...]
    test: tuple[str, ...]
    seed: int
    test_fraction: float
    digest: str

    def save(self, path: str | Path) -> Path:
        """Write the split as JSON (the record a rerun reads back)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        """Read a split written by :meth:`save`, checking its digest."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            split = cls(tuple(data["train"]), tuple(data["test"]), int(data["seed"]), float(data["test_fraction"]), data["digest"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"not a split record: {exc}", source=path) from None
        if _digest(split.train, split.test) != split.digest:
            raise InputError("split record was edited: its digest does not match its word lists", source=path, key="digest")
        return split


def _digest(train: Sequence[str], test: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update("\x1f".join(train).encode())
    h.update(b"\x1e")
    h.update("\x1f".join(test).encode())
    return h.hexdigest()[:16]


def split_concepts(words: Sequence[str], test_fraction: float = 0.4, seed: int = 0,
                   groups: Sequence[str] | None = None) -> Split:
    """Split concepts into train and test, by group, with a seeded permutation.

    Args:
        words: concept labels (rows of a norms table).
        test_fraction: share of groups held out, in (0, 1).
        seed: seed of the permutation; the same seed and words give the same split.
        groups: a group label per word; rows of one group land on the same side (use the
            English word of a paired table so that a word never sits on both sides).
            Defaults to the case-folded word itself.

    Returns:
        The :class:`Split`; a word list may repeat labels when rows repeat them.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}", key="test_fraction")
    keys = [normalise_word(g) for g in (groups if groups is not None else words)]
    if len(keys) != len(words):
        raise InputError(f"{len(keys)} groups for {len(words)} words", key="groups")
    unique = sorted(set(keys))
    if len(unique) < 2:
        raise InputError("need at least two distinct concepts to split", key="words")
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = min(max(1, round(test_fraction * len(unique))), len(unique) - 1)
    test_keys = {unique[i] for i in order[:n_test]}
    train = tuple(w for w, k in zip(words, keys) if k not in test_keys)
    test = tuple(w for w, k in zip(words, keys) if k in test_keys)
    return Split(train, test, int(seed), float(test_fraction), _digest(train, test))

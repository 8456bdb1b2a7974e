"""Seeded splits by word family, and seeded samples of a split's sides.

Every draw is random and recorded: the test split permutes families, and each cap
(``validation``, ``max_train``, ``max_test``) draws from its own independent stream of the
job's seed, so changing one cap never reshuffles another side. Families (see
:mod:`embodiment.families`) never straddle train, validation and test.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embodiment.errors import InputError
from embodiment.norms import normalise_word

#: an independent random stream per draw, derived from the job's seed
STREAMS = {"test": 0, "validation": 1, "max_train": 2, "max_test": 3}


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of draw ``name`` (a key of :data:`STREAMS`) under ``seed``."""
    return np.random.default_rng([int(seed), STREAMS[name]])


@dataclass(frozen=True)
class Split:
    """A partition of concepts into train, (optional) validation and test.

    Attributes:
        train: concept labels for training, in source order.
        test: held-out concept labels, in source order.
        seed: the seed that drew it.
        test_fraction: the requested share of held-out families (NaN for a fixed test table).
        digest: a hash of the word lists; two runs with equal digests saw the same split.
        validation: training-side concepts set aside to choose among trials, in source order.
        rule: how the sides were drawn, in words (recorded with the split).
    """

    train: tuple[str, ...]
    test: tuple[str, ...]
    seed: int
    test_fraction: float
    digest: str
    validation: tuple[str, ...] = ()
    rule: str = ""

    def save(self, path: str | Path) -> Path:
        """Write the split as JSON (the record a rerun reads back)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record(), ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    def record(self) -> dict:
        """The split as a JSON-ready dict."""
        out = asdict(self)
        out["test_fraction"] = None if np.isnan(self.test_fraction) else self.test_fraction
        return out

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        """Read a split written by :meth:`save`, checking its digest."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            fraction = float("nan") if data["test_fraction"] is None else float(data["test_fraction"])
            split = cls(
                tuple(data["train"]),
                tuple(data["test"]),
                int(data["seed"]),
                fraction,
                data["digest"],
                tuple(data.get("validation", ())),
                data.get("rule", ""),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"not a split record: {exc}", source=path) from None
        if digest_of(split.train, split.test, split.validation) != split.digest:
            raise InputError(
                "split record was edited: its digest does not match its word lists", source=path, key="digest"
            )
        return split


def digest_of(train: Sequence[str], test: Sequence[str], validation: Sequence[str] = ()) -> str:
    """A short hash of a split's word lists."""
    h = hashlib.sha256()
    h.update("\x1f".join(train).encode())
    h.update(b"\x1e")
    h.update("\x1f".join(test).encode())
    if validation:
        h.update(b"\x1d")
        h.update("\x1f".join(validation).encode())
    return h.hexdigest()[:16]


def split_concepts(
    words: Sequence[str],
    test_fraction: float = 0.4,
    seed: int = 0,
    groups: Sequence[str] | None = None,
    language: str = "en",
) -> Split:
    """Split concepts into train and test by family, with a seeded permutation.

    Args:
        words: concept labels (rows of a norms table).
        test_fraction: share of families held out, in (0, 1).
        seed: seed of the permutation; the same seed and words give the same split.
        groups: a family label per row; rows of one family land on the same side.
            Defaults to each word's family (:func:`embodiment.families.family_groups`).
        language: the words' language, for the default families.

    Returns:
        The :class:`Split`; a word list may repeat labels when rows repeat them.
    """
    from embodiment.families import family_groups

    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}", key="test_fraction")
    keys = [normalise_word(g) for g in (groups if groups is not None else family_groups({language: list(words)}))]
    if len(keys) != len(words):
        raise InputError(f"{len(keys)} groups for {len(words)} words", key="groups")
    unique = sorted(set(keys))
    if len(unique) < 2:
        raise InputError(
            f"need at least two word families to split, found {len(unique)} among {len(words)} words", key="words"
        )
    order = stream(seed, "test").permutation(len(unique))
    n_test = min(max(1, round(test_fraction * len(unique))), len(unique) - 1)
    test_keys = {unique[i] for i in order[:n_test]}
    train = tuple(w for w, k in zip(words, keys) if k not in test_keys)
    test = tuple(w for w, k in zip(words, keys) if k in test_keys)
    return Split(
        train,
        test,
        int(seed),
        float(test_fraction),
        digest_of(train, test),
        rule=f"{test_fraction:g} of word families held out",
    )


def sample_rows(n_available: int, n_wanted: int, seed: int, name: str, *, key: str) -> np.ndarray:
    """``n_wanted`` row indices drawn at random from ``n_available`` (stream ``name``), sorted.

    Raises:
        InputError: more rows wanted than there are, naming ``key`` and both numbers.
    """
    if n_wanted > n_available:
        raise InputError(f"{n_wanted} concepts asked for, the split's side holds {n_available}", key=key)
    return np.sort(stream(seed, name).choice(n_available, size=n_wanted, replace=False))


def sample_families(groups: Sequence[str], n_wanted: int, seed: int, name: str, *, key: str) -> np.ndarray:
    """Row indices of whole families drawn at random (stream ``name``) until they hold
    ``n_wanted`` rows: families in a random order, each taken whole where it still fits,
    so no family is split between the sample and the rest; where the sizes cannot make
    ``n_wanted`` exactly, the next families in that order are taken until they reach it
    (a few rows over, never under). Sorted.

    Raises:
        InputError: more rows wanted than there are, naming ``key`` and both numbers.
    """
    if n_wanted > len(groups):
        raise InputError(f"{n_wanted} concepts asked for, the split's side holds {len(groups)}", key=key)
    rows_of: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        rows_of.setdefault(g, []).append(i)
    families = sorted(rows_of)
    order = stream(seed, name).permutation(len(families))
    taken: list[int] = []
    used = set()
    for j in order:
        if len(taken) == n_wanted:
            break
        rows = rows_of[families[j]]
        if len(taken) + len(rows) <= n_wanted:
            taken += rows
            used.add(j)
    for j in order:
        if len(taken) >= n_wanted:
            break
        if j not in used:
            taken += rows_of[families[j]]
    return np.sort(np.asarray(taken, dtype=int))


def cap_sides(
    train: Sequence[str],
    train_groups: Sequence[str],
    test: Sequence[str],
    *,
    seed: int,
    n_validation: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    key_prefix: str = "",
) -> tuple[list[str], list[str], list[str]]:
    """A split's sides as a job uses them: validation as whole families of the training side,
    then random samples of the training and held-out sides (each draw its own stream; a cap
    of 0 or None takes the whole side).

    Args:
        train, train_groups: the training side's words and their family labels.
        test: the held-out side's words.
        seed: the job's seed.
        n_validation, n_train, n_test: the caps.
        key_prefix: prefixed to the cap's name in errors (``norms.en.``).

    Returns:
        (train, validation, test) word lists, each in source order.
    """
    train, test, validation = list(train), list(test), []
    if n_validation:
        picked = set(
            sample_families(train_groups, n_validation, seed, "validation", key=f"{key_prefix}validation").tolist()
        )
        validation = [w for i, w in enumerate(train) if i in picked]
        train = [w for i, w in enumerate(train) if i not in picked]
    if n_train:
        train = [train[i] for i in sample_rows(len(train), n_train, seed, "max_train", key=f"{key_prefix}max_train")]
    if n_test:
        test = [test[i] for i in sample_rows(len(test), n_test, seed, "max_test", key=f"{key_prefix}max_test")]
    return train, validation, test


def draw_sides(
    words: Sequence[str],
    *,
    test_fraction: float,
    seed: int,
    n_train: int | None = None,
    n_validation: int = 0,
    n_test: int | None = None,
    language: str = "en",
) -> tuple[list[str], list[str], list[str]]:
    """Train, validation and test words as a job draws them: families split at random
    (:func:`split_concepts`), then :func:`cap_sides`. For scripts outside a job.

    Returns:
        (train, validation, test) word lists, each in source order.
    """
    from embodiment.families import family_groups

    groups = family_groups({language: list(words)})
    split = split_concepts(words, test_fraction, seed, groups=groups)
    group_of = dict(zip(words, groups))
    return cap_sides(
        split.train,
        [group_of[w] for w in split.train],
        split.test,
        seed=seed,
        n_validation=n_validation,
        n_train=n_train,
        n_test=n_test,
    )

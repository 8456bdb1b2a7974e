"""Word families: which concepts must sit on the same side of a split.

"abandon", "abandoned" and "abandonment" share almost all of what a model or a rater
knows about them: a split that trains on one and tests on another measures recall, not
generalisation. A word's family key is its Snowball stem (English or Dutch, the stemmers
of ``snowballstemmer``); a multi-word expression takes the stem of its last word, its head
in English and Dutch compounds ("apartment building" joins "build", "building",
"builder"). Rows whose keys are linked (a paired English/Dutch table links the two words
of each translation pair) form one family, the connected component of their keys, so a
translation pair and both words' families always travel together.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import lru_cache

from embodiment.errors import InputError
from embodiment.norms import normalise_word

#: languages with a stemmer, by ISO 639-1 code -> snowballstemmer's algorithm name
STEMMERS = {"en": "english", "nl": "dutch"}
#: tables from this many rows keep their families in the user cache: stemming every word of
#: the full English norms is seconds of pure Python, paid by each process that splits them
#: (the driver, every trial and every training worker)
CACHED_FROM_ROWS = 2000


@lru_cache(maxsize=len(STEMMERS))
def _stemmer(language: str):
    import snowballstemmer

    if language not in STEMMERS:
        raise InputError(f"no stemmer for language {language!r}; known: {', '.join(STEMMERS)}", key="language")
    return snowballstemmer.stemmer(STEMMERS[language])


def family_key(word: str, language: str = "en") -> str:
    """The family key of one concept label: the stem of its (last) word, case-folded."""
    tokens = normalise_word(word).replace("-", " ").split()
    if not tokens:
        return ""
    return f"{language}:{_stemmer(language).stemWord(tokens[-1])}"


def family_groups(columns: dict[str, Sequence[str]]) -> list[str]:
    """One family label per row, linking the keys of every column of that row.

    Args:
        columns: language -> the row's concept label in that language (one column for a
            plain table; English and Dutch for a paired table, row-aligned).

    Returns:
        A label per row; rows with equal labels are one family (the smallest key of the
        connected component, so labels do not depend on row order).
    """
    languages = list(columns)
    n = len(columns[languages[0]])
    if any(len(columns[lang]) != n for lang in languages):
        raise InputError("paired columns of unequal length", key="columns")
    if n < CACHED_FROM_ROWS:
        return _linked_families(columns)
    path = _cache_path(columns)
    try:
        with open(path, encoding="utf-8") as fh:
            labels = json.load(fh)
        if isinstance(labels, list) and len(labels) == n and all(isinstance(x, str) for x in labels):
            return labels
    except (OSError, ValueError):
        pass  # not cached yet (or a damaged file): computed and written again
    labels = _linked_families(columns)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(labels), encoding="utf-8")
        os.replace(partial, path)  # whole or absent: a reader never sees half a file
    except OSError:
        pass  # a read-only cache costs the next process the stemming, nothing else
    return labels


def _cache_path(columns: dict[str, Sequence[str]]):
    """Where the families of these exact columns are kept: named by a digest of the labels,
    the stemmer's version and the languages, so any change computes them afresh."""
    import importlib.metadata as md

    from embodiment.cache import cache_root

    digest = hashlib.sha256()
    # "v1": raise it whenever family_key or the linking changes what a row's label is
    digest.update(f"families v1; snowballstemmer {md.version('snowballstemmer')}".encode())
    for lang, words in columns.items():
        digest.update(f"\0{lang}\0".encode())
        digest.update("\0".join(map(str, words)).encode())
    return cache_root() / "families" / f"{digest.hexdigest()[:32]}.json"


def _linked_families(columns: dict[str, Sequence[str]]) -> list[str]:
    """The connected components of the rows' keys (see :func:`family_groups`)."""
    languages = list(columns)
    n = len(columns[languages[0]])
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    row_keys = [[family_key(columns[lang][i], lang) for lang in languages] for i in range(n)]
    for keys in row_keys:
        roots = [find(k) for k in keys]
        for other in roots[1:]:
            a, b = sorted((find(roots[0]), find(other)))
            parent[b] = a
    return [find(keys[0]) for keys in row_keys]

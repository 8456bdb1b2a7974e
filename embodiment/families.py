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

from collections.abc import Sequence
from functools import lru_cache

from embodiment.errors import InputError
from embodiment.norms import normalise_word

#: languages with a stemmer, by ISO 639-1 code -> snowballstemmer's algorithm name
STEMMERS = {"en": "english", "nl": "dutch"}


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

"""Norms, splits and task data for a job, derived deterministically from the spec.

Driver and Train workers call the same functions with the same spec and seed, so every
process sees the same split without shipping data around; the split digests go into the
run manifest so that a rerun can be checked against them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from embodiment import dimensions as dims
from embodiment.datasets import resolve as resolve_source
from embodiment.formats import FORMATS, TaskData
from embodiment.norms import Norms, load_norms, load_paired
from embodiment.errors import InputError
from embodiment.families import family_groups
from embodiment.splits import Split, cap_sides, digest_of, split_concepts


@dataclass
class LanguageData:
    """One language's train, validation and held-out norms, and the record of that split
    (exactly the words used, after every cap)."""

    train: Norms
    test: Norms
    split: Split
    validation: Norms | None = None


def _load(source: str, ns: dict, lang: str) -> tuple[Norms, list[int], dict[str, list[str]]]:
    """One language's norms, deduplicated; the source rows kept; and the words of every
    source row that families are made of (a paired table's: both words of each translation
    pair, so a pair never straddles a split, and both languages of one table get the same
    families; see :func:`embodiment.families.family_groups`)."""
    source = str(resolve_source(source))  # wu2026:train -> its table; paths and "embedded" unchanged
    if ns["paired"]:
        en, nl = load_paired(source)
        norms, columns = (en if lang == "en" else nl), {"en": en.words, "nl": nl.words}
    elif ns["format"] == "csv":  # any table, with its declared columns
        norms = load_norms(source, "csv", word_column=ns["word_column"], columns=ns["columns"], language=lang)
        columns = {lang: norms.words}
    else:
        norms = load_norms(source, ns["format"])
        columns = {lang: norms.words}
    rows = _first_rows(norms.words)
    return (norms if len(rows) == len(norms) else norms.select([norms.words[i] for i in rows])), rows, columns


def _first_rows(words: list[str]) -> list[int]:
    """Paired tables repeat English words; each concept once (its first row)."""
    seen, rows = set(), []
    for i, w in enumerate(words):
        if w.casefold() not in seen:
            seen.add(w.casefold())
            rows.append(i)
    return rows


def _take(norms: Norms, groups: list[str], rows) -> tuple[Norms, list[str]]:
    rows = list(rows)
    return norms.select([norms.words[i] for i in rows]), [groups[i] for i in rows]


def _fixed_split(
    full: Norms, rows: list[int], columns: dict, ns: dict, lang: str, wanted
) -> tuple[Norms, list[str], Norms]:
    """A fixed held-out table: training keeps only words of families the test table lacks."""
    test, _, test_columns = _load(ns["test_source"], ns, lang)
    test = test.select(None, wanted)
    # families over both tables at once: a test word and a training word of one family
    # (or of one translation pair) get one label
    n_source = len(next(iter(columns.values())))
    both = family_groups({k: [*columns[k], *test_columns[k]] for k in columns})
    held = set(both[n_source:])
    groups = [both[i] for i in rows]
    train, train_groups = _take(full, groups, [i for i, g in enumerate(groups) if g not in held])
    if len(train) == 0:
        raise InputError(
            f"every training word shares a family with a word of the test table ({len(full)} words left out)",
            key=f"norms.{lang}.test_source",
        )
    return train, train_groups, test


@lru_cache(maxsize=8)
def _prepare_cached(norms_json: str, seed: int) -> dict[str, LanguageData]:
    out = {}
    for lang, ns in json.loads(norms_json).items():
        full, rows, columns = _load(ns["source"], ns, lang)
        wanted = dims.subset(full.dimensions, ns["dimensions"]) if ns["dimensions"] != "all" else full.dimensions
        full = full.select(None, wanted)
        if ns.get("test_source"):
            train, train_groups, test = _fixed_split(full, rows, columns, ns, lang, wanted)
            fraction, rule = float("nan"), "fixed test table; training words of its families left out"
        else:
            every = family_groups(columns)
            groups = [every[i] for i in rows]
            split = split_concepts(full.words, ns["test_fraction"], seed, groups=groups)
            index = {w: i for i, w in enumerate(full.words)}
            train, train_groups = _take(full, groups, [index[w] for w in split.train])
            test = full.select(list(split.test))
            fraction, rule = split.test_fraction, split.rule
        train_words, val_words, test_words = cap_sides(
            train.words,
            train_groups,
            test.words,
            seed=seed,
            n_validation=ns.get("validation") or 0,
            n_train=ns.get("max_train"),
            n_test=ns.get("max_test"),
            key_prefix=f"norms.{lang}.",
        )
        validation = train.select(val_words) if val_words else None
        train, test = train.select(train_words), test.select(test_words)
        record = Split(
            tuple(train_words),
            tuple(test_words),
            int(seed),
            fraction,
            digest_of(train_words, test_words, val_words),
            tuple(val_words),
            f"{rule}; random samples: validation (whole families), max_train, max_test",
        )
        out[lang] = LanguageData(train, test, record, validation)
    return out


def prepare_norms(norms_specs: dict, seed: int) -> dict[str, LanguageData]:
    """Train/test norms per language for a job's ``norms`` section (dicts or NormsSpec)."""
    plain = {lang: (ns.model_dump() if not isinstance(ns, dict) else ns) for lang, ns in norms_specs.items()}
    return _prepare_cached(json.dumps(plain, sort_keys=True), seed)


def load_mcq(path: str | None) -> list[dict]:
    """Multiple-choice items from a JSON list (question, options A-D, correct_option)."""
    if not path:
        return []
    from embodiment.errors import InputError

    path = str(resolve_source(path))
    try:
        with open(path, encoding="utf-8") as fh:
            items = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read multiple-choice items: {exc}", source=path) from None
    for i, it in enumerate(items):
        if not {"question", "options", "correct_option"} <= set(it) or set(it["options"]) != {"A", "B", "C", "D"}:
            raise InputError(f"item {i} needs question, options A-D and correct_option", source=path)
        it.setdefault("index", i)
    return items


def training_data(condition: dict, norms_specs: dict, seed: int, mcq: dict, max_mcq: int | None = None) -> TaskData:
    """The training split of one condition: its languages, restricted to its dimensions."""
    data = prepare_norms(norms_specs, seed)
    if FORMATS[condition["format"]].trains_on == "mcq":
        items = load_mcq(mcq.get("train"))
        return TaskData(mcq_items=items[:max_mcq] if max_mcq else items, seed=seed)
    norms = {}
    for lang in condition["languages"]:
        train = data[lang].train
        which = condition["dimensions"]
        norms[lang] = train if which == "all" else train.select(None, which)
    return TaskData(norms=norms, seed=seed)

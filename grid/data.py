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
from embodiment.splits import Split, split_concepts


@dataclass
class LanguageData:
    """One language's train and held-out norms."""

    train: Norms
    test: Norms
    split: Split | None
    validation: Norms | None = None


def _load(source: str, ns: dict, lang: str) -> Norms:
    source = str(resolve_source(source))  # wu2026:train -> its table; paths and "embedded" unchanged
    if ns["paired"]:
        en, nl = load_paired(source)
        return en if lang == "en" else nl
    if ns["format"] == "csv":  # any table, with its declared columns
        return load_norms(source, "csv", word_column=ns["word_column"], columns=ns["columns"], language=lang)
    return load_norms(source, ns["format"])


def _dedupe(norms: Norms) -> Norms:
    """Paired tables repeat English words; keep each concept once (its first row)."""
    seen, rows = set(), []
    for i, w in enumerate(norms.words):
        if w.casefold() not in seen:
            seen.add(w.casefold())
            rows.append(i)
    return norms if len(rows) == len(norms) else norms.select([norms.words[i] for i in rows])


@lru_cache(maxsize=8)
def _prepare_cached(norms_json: str, seed: int) -> dict[str, LanguageData]:
    out = {}
    for lang, ns in json.loads(norms_json).items():
        full = _dedupe(_load(ns["source"], ns, lang))
        wanted = dims.subset(full.dimensions, ns["dimensions"]) if ns["dimensions"] != "all" else full.dimensions
        full = full.select(None, wanted)
        if ns.get("test_source"):
            train = full
            test = _dedupe(_load(ns["test_source"], ns, lang)).select(None, wanted)
            held = {w.casefold() for w in test.words}
            train = train.select([w for w in train.words if w.casefold() not in held])
            split = None
        else:
            split = split_concepts(full.words, ns["test_fraction"], seed)
            train, test = full.select(list(split.train)), full.select(list(split.test))
        validation = None
        if ns.get("validation"):
            validation = train.select(train.words[: ns["validation"]])
            train = train.select(train.words[ns["validation"]:])
        if ns.get("max_train"):
            train = train.select(train.words[: ns["max_train"]])
        if ns.get("max_test"):
            test = test.select(test.words[: ns["max_test"]])
        out[lang] = LanguageData(train, test, split, validation)
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

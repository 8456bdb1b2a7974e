"""Splits a researcher can trust: random samples, word families on one side, caps checked."""

from __future__ import annotations

import numpy as np
import pytest

from embodiment.errors import InputError
from embodiment.families import family_groups, family_key
from embodiment.norms import load_norms, load_paired
from embodiment.splits import draw_sides, sample_families, sample_rows, split_concepts
from grid.configure import configure
from grid.data import prepare_norms
from grid.spec import NormsSpec, SpecError, parse_job


def _prepare(seed=0, **languages):
    return prepare_norms({lang: NormsSpec.model_validate(ns) for lang, ns in languages.items()}, seed)


def _family_sides(*sides, language="en"):
    return [{family_key(w, language) for w in side} for side in sides]


def test_families_follow_the_stem_and_the_last_word():
    assert family_key("abandon") == family_key("abandoned") == family_key("abandonment")
    assert family_key("apartment building") == family_key("buildings")
    assert family_key("Huizen", "nl") == family_key("huis", "nl")
    # one component per translation pair and its families
    groups = family_groups({"en": ["dog", "dogs", "cat"], "nl": ["hond", "honden", "kat"]})
    assert groups[0] == groups[1] != groups[2]


def test_large_tables_keep_their_families_in_the_cache_with_the_same_labels(tmp_path, monkeypatch):
    from embodiment import families

    monkeypatch.setenv("EGRID_CACHE", str(tmp_path))
    words = load_norms("embedded").words[: families.CACHED_FROM_ROWS + 7]
    linked = families._linked_families({"en": words})
    assert family_groups({"en": words}) == linked  # computed, then written
    (written,) = (tmp_path / "families").iterdir()
    assert family_groups({"en": words}) == linked  # read back
    written.write_text('["half')  # damaged: computed again and rewritten
    assert family_groups({"en": words}) == linked
    assert len(list((tmp_path / "families").iterdir())) == 1
    # another table (one word changed) gets its own entry, never the first one's labels
    other = [*words[:-1], "dogs"]
    assert family_groups({"en": other})[-1] == family_key("dog")
    assert len(list((tmp_path / "families").iterdir())) == 2
    # small tables are not cached
    family_groups({"en": ["dog", "dogs"]})
    assert len(list((tmp_path / "families").iterdir())) == 2


def test_embedded_demo_split_is_random_family_grouped_and_representative():
    data = _prepare(
        en={"source": "embedded", "test_fraction": 0.4, "validation": 150, "max_train": 800, "max_test": 300}
    )["en"]
    train, val, test = data.train.words, data.validation.words, data.test.words
    assert (len(train), len(val), len(test)) == (800, 150, 300)
    a, b, c = _family_sides(train, val, test)
    assert not (a & b) and not (a & c) and not (b & c)
    # the recorded split holds exactly the words used
    assert data.split.train == tuple(train) and data.split.test == tuple(test) and data.split.validation == tuple(val)
    # not the head of the alphabetical list: the sample spans the alphabet
    full = load_norms("embedded")
    assert max(test)[0] >= "t" and len({w[0] for w in test}) >= 20
    # each held-out dimension mean inside the full table's 95 % bootstrap CI of a mean of 300
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(full), size=(2000, 300))
    for j, dim in enumerate(full.dimensions):
        lo, hi = np.quantile(full.means[idx, j].mean(axis=1), [0.025, 0.975])
        assert lo <= data.test.means[:, j].mean() <= hi, dim


def test_each_cap_draws_from_its_own_stream():
    base = {"source": "embedded", "test_fraction": 0.4, "max_train": 500, "max_test": 200}
    one = _prepare(3, en=base)["en"]
    two = _prepare(3, en={**base, "max_test": 250})["en"]
    assert one.train.words == two.train.words and one.test.words != two.test.words
    assert _prepare(4, en=base)["en"].train.words != one.train.words


def test_caps_larger_than_a_side_name_the_key_and_numbers():
    with pytest.raises(InputError, match=r"norms.en.max_test: 20000 concepts asked for, the split's side holds \d+"):
        _prepare(en={"source": "embedded", "test_fraction": 0.4, "max_test": 20000})
    with pytest.raises(InputError, match="validation"):
        sample_families(["a", "b"], 3, 0, "validation", key="validation")
    with pytest.raises(InputError, match="max_train: 5 concepts asked for, the split's side holds 4"):
        sample_rows(4, 5, 0, "max_train", key="max_train")


def test_validation_takes_whole_families():
    groups = ["a", "a", "a", "b", "c", "c", "d", "e"]
    for seed in range(20):
        rows = sample_families(groups, 4, seed, "validation", key="validation")
        assert 4 <= len(rows) <= 6  # exactly 4 where the family sizes allow
        taken = {groups[i] for i in rows}
        assert all(groups[i] not in taken for i in range(len(groups)) if i not in set(rows))


def test_paired_tables_keep_translation_pairs_and_families_together(wu2026_tables):
    source = str(wu2026_tables / "lancaster_dutch_train.csv")
    spec = {"source": source, "paired": True, "test_fraction": 0.3}
    data = _prepare(en=spec, nl=spec)
    en, nl = load_paired(source)
    test_rows = [i for i, w in enumerate(en.words) if w in set(data["en"].test.words)]
    assert {nl.words[i] for i in test_rows} <= set(data["nl"].test.words)
    a, c = _family_sides(data["en"].train.words, data["en"].test.words)
    assert not a & c
    a, c = _family_sides(data["nl"].train.words, data["nl"].test.words, language="nl")
    assert not a & c


def test_fixed_test_table_drops_training_words_of_its_families(wu2026_tables):
    spec = {
        "source": str(wu2026_tables / "lancaster_dutch_train.csv"),
        "paired": True,
        "test_source": str(wu2026_tables / "lancaster_dutch_test.csv"),
    }
    data = _prepare(en=spec)["en"]
    a, c = _family_sides(data.train.words, data.test.words)
    assert not a & c and len(data.train) > 1000


def test_draw_sides_matches_a_family_split():
    words = load_norms("embedded").words
    train, val, test = draw_sides(words, test_fraction=0.4, seed=0, n_train=500, n_validation=100, n_test=200)
    assert (len(train), len(val), len(test)) == (500, 100, 200)
    a, b, c = _family_sides(train, val, test)
    assert not (a & b) and not (a & c) and not (b & c)
    assert split_concepts(words, 0.4, 0).test[0] != words[0]


def _job(**over):
    raw = {
        "name": "pick",
        "models": ["tiny"],
        "norms": {"en": {"source": "embedded", "max_train": 40, "max_test": 30}},
        "conditions": [{"name": "a", "format": "rating"}, {"name": "b", "format": "pairwise"}],
        "training": {"steps": 1, "batch_size": 2},
    }
    raw.update(over)
    return parse_job(raw, "pick.yaml")


def test_a_job_that_picks_among_trials_needs_a_validation_split():
    with pytest.raises(
        SpecError, match=r"norms.en.validation: this job runs 2 trial configurations and picks the best"
    ):
        configure(_job())
    norms = {"en": {"source": "embedded", "max_train": 40, "max_test": 30, "validation": 20}}
    assert len(configure(_job(norms=norms))) == 2

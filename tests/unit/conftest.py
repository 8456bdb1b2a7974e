"""Fixtures of the unit tests that need tables built from the shared norms."""

import numpy as np
import pandas as pd
import pytest

from embodiment.norms import load_paired


@pytest.fixture
def ratings_table(tmp_path, wu2026_tables):
    en, _ = load_paired(wu2026_tables / "lancaster_dutch_test.csv")
    # unique English words; a base (weak) and a fine-tuned (strong) condition
    first = sorted({w: i for i, w in reversed(list(enumerate(en.words)))}.values())[:400]
    words = [en.words[i] for i in first]
    human = en.means[first]
    rng = np.random.default_rng(0)
    short = {"Foot_leg": "foot", "Hand_arm": "hand"}
    rows = []
    for cond, noise in (("base", 2.0), ("tuned", 0.5)):
        model = np.clip(human + rng.normal(scale=noise, size=human.shape), 0, 5)
        for i, w in enumerate(words):
            for j, d in enumerate(en.dimensions):
                rows.append({"word": w.lower(), "dimension": short.get(d, d), "condition": cond, "rating": model[i, j]})
    rows.append({"word": "notaword", "dimension": "Visual", "condition": "base", "rating": 1.0})
    path = tmp_path / "ratings.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    norms = tmp_path / "norms.csv"
    frame = pd.read_csv(wu2026_tables / "lancaster_dutch_test.csv", keep_default_na=False)
    frame.iloc[first].drop(columns=["Woord", "Horen", "Zien", "Ruiken", "Proeven", "Voelen", "Sensaties"]).to_csv(
        norms, index=False
    )
    return path, norms, pd.DataFrame(rows), en.dimensions

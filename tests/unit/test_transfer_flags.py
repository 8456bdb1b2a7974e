"""Transfer rows say what the trial trained on; each group's mean delta has a paired CI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from embodiment.norms import DUTCH_DIMS, LANCASTER_DIMS
from grid.aggregate import aggregate, group_label, trained_on
from grid.spec import parse_job

JOB = {
    "name": "transfer",
    "models": ["m"],
    "norms": {"en": {"source": "embedded", "validation": 20}, "nl": {"source": "embedded", "validation": 20}},
    "conditions": [
        {"name": "en_all", "format": "rating", "languages": ["en"]},
        {"name": "nl_all", "format": "rating", "languages": ["nl"]},
        {"name": "en_three", "format": "rating", "languages": ["en"], "dimensions": ["Visual", "Auditory", "Haptic"]},
        {"name": "colour", "format": "mcq"},
    ],
    "mcq": {"train": "wu2026:mcq-train", "test": "wu2026:mcq-test"},
}
TRIALS = {"t_en": "en_all", "t_nl": "nl_all", "t_three": "en_three", "t_mcq": "colour"}


def _ratings(rng, n=60):
    rows = []
    for language, dims in (("en", LANCASTER_DIMS), ("nl", DUTCH_DIMS)):
        human = rng.uniform(0, 5, size=(n, len(dims)))
        for k, trial in enumerate(["base", *TRIALS]):
            model = human + rng.normal(scale=3.0 - 0.4 * k, size=human.shape)
            for j, d in enumerate(dims):
                rows.append(
                    pd.DataFrame(
                        {
                            "trial_id": trial,
                            "condition": TRIALS.get(trial, "base"),
                            "model": "m",
                            "language": language,
                            "concept": [f"{language}{i}" for i in range(n)],
                            "dimension": d,
                            "human": human[:, j],
                            "expected": model[:, j],
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def test_transfer_rows_flag_dimension_language_and_format(rng, wu2026_tables):
    spec = parse_job(JOB, "transfer.yaml")
    trained = trained_on(spec.conditions, {"en": list(LANCASTER_DIMS), "nl": list(DUTCH_DIMS)})
    ratings = _ratings(rng)
    trials = pd.DataFrame({"trial_id": list(TRIALS), "condition": list(TRIALS.values())})
    out = aggregate({"ratings": ratings, "trials": trials}, subsets=("all",), n_boot=100, seed=1, trained=trained)
    t = out["transfer"].set_index(["trial_id", "language", "dimension"])
    # English-trained on all dimensions: English rows trained; Dutch rows another language,
    # their senses the equivalents of trained English ones
    assert t.loc[("t_en", "en", "Torso"), ["dimension_trained", "language_trained", "format_trained"]].tolist() == [
        True,
        True,
        True,
    ]
    assert t.loc[("t_en", "nl", "Zien"), ["dimension_trained", "language_trained"]].tolist() == [True, False]
    # Dutch-trained: English motor dimensions have no Dutch equivalent -> untrained
    assert t.loc[("t_nl", "en", "Visual"), ["dimension_trained", "language_trained"]].tolist() == [True, False]
    assert t.loc[("t_nl", "en", "Foot_leg"), "dimension_trained"] == False  # noqa: E712
    # three senses: the others and the five motor dimensions untrained
    three = t.loc["t_three"].xs("en")
    assert set(three.index[three["dimension_trained"].astype(bool)]) == {"Visual", "Auditory", "Haptic"}
    # colour questions: another format, no dimension trained
    mcq = t.loc["t_mcq"]
    assert not mcq["format_trained"].any() and not mcq["dimension_trained"].any()

    # each group's mean delta against a loop over its dimensions (scipy), CI around it
    groups = out["metrics"][out["metrics"]["metric"] == "transfer_delta"]
    row = groups[
        (groups["trial_id"] == "t_three")
        & (groups["language"] == "en")
        & (groups["subset"] == group_label(False, True, True))
    ].iloc[0]
    en = ratings[ratings["language"] == "en"]
    deltas = []
    for d in [d for d in LANCASTER_DIMS if d not in ("Visual", "Auditory", "Haptic")]:
        part = en[en["dimension"] == d].pivot(index="concept", columns="trial_id", values="expected")
        human = en[en["dimension"] == d].drop_duplicates("concept").set_index("concept")["human"].loc[part.index]
        deltas.append(
            stats.spearmanr(part["t_three"], human).statistic - stats.spearmanr(part["base"], human).statistic
        )
    assert row["value"] == pytest.approx(np.mean(deltas), abs=1e-12)
    assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["n"] == 60


def test_the_report_draws_each_groups_delta_with_its_ci(rng, wu2026_tables, tmp_path, svg_texts):
    from grid.report import build_report
    from grid.results import ResultsStore

    spec = parse_job(JOB, "transfer.yaml")
    trained = trained_on(spec.conditions, {"en": list(LANCASTER_DIMS), "nl": list(DUTCH_DIMS)})
    ratings = _ratings(rng)
    trials = pd.DataFrame(
        {
            "trial_id": list(TRIALS),
            "condition": list(TRIALS.values()),
            "model": "m",
            "status": "TERMINATED",
            "eval_score": 0.5,
        }
    )
    out = aggregate({"ratings": ratings, "trials": trials}, subsets=("all",), n_boot=100, seed=1, trained=trained)
    run = tmp_path / "transfer-0123456789"
    store = ResultsStore(str(run))
    store.write("ratings", "all", ratings)
    store.write("trials", "all", trials)
    for table, frame in out.items():
        store.write(table, "aggregate", frame)
    store.write_json("manifest.json", {"run_name": run.name, "status": "finished", "job": JOB})
    report = build_report(str(run))
    assert "transfer_groups" in report.figures, (report.results.labels, report.missing)
    texts = svg_texts(report.figures["transfer_groups"][1])
    groups = out["metrics"][out["metrics"]["metric"] == "transfer_delta"]
    # every group of every condition, with its delta as drawn
    for row in groups.itertuples():
        assert f"{row.condition} ({row.language}): {row.subset}" in texts  # the condition's best trial, by name
        assert f"{row.value:+.3f}" in texts
    drawn = report.results.tables["metrics"]
    assert len(drawn[drawn["metric"] == "transfer_delta"]) == len(groups)

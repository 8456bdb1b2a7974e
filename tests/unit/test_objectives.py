"""The objective table: base and each objective's best trial (chosen on validation
scores, never on held-out results) side by side on every held-out measure with its CI."""

import numpy as np
import pandas as pd
import pytest

from grid.aggregate import aggregate
from grid.objectives import objective_table, objective_text

pytestmark = pytest.mark.unit


def _run(rng):
    """Ratings of 40 held-out concepts for the base and four trials of two objectives, and
    colour answers for the base and the best trials."""
    words, dims = [f"w{i}" for i in range(40)], ["Visual", "Haptic", "Auditory"]
    human = rng.uniform(0, 5, size=(40, 3))
    # noise per trial: t2 is the best on held-out concepts, but t1 has the higher validation score
    noise = {"base": 4.0, "t1": 1.0, "t2": 0.3, "t3": 2.0, "t4": 3.0}
    ratings = pd.DataFrame(
        [
            {
                "trial_id": t,
                "model": "m",
                "language": "en",
                "concept": w,
                "dimension": d,
                "human": human[i, j],
                "expected": human[i, j] + rng.normal(scale=s),
            }
            for t, s in noise.items()
            for i, w in enumerate(words)
            for j, d in enumerate(dims)
        ]
    )
    trials = pd.DataFrame(
        {
            "trial_id": ["t1", "t2", "t3", "t4"],
            "condition": ["rating", "rating", "pairwise", "pairwise"],
            "format": ["rating", "rating", "pairwise", "pairwise"],
            "eval_score": [0.6, 0.5, 0.2, 0.3],
        }
    )
    choices = pd.DataFrame(
        [
            {"trial_id": t, "model": "m", "index": q, "option": 0, "is_correct": bool(q % k == 0)}
            for t, k in (("base", 4), ("t1", 2), ("t4", 3))
            for q in range(60)
        ]
    )
    return ratings, trials, choices


def test_best_trials_by_validation_score_with_held_out_values_and_cis(rng):
    ratings, trials, choices = _run(rng)
    metrics = aggregate({"ratings": ratings, "trials": trials, "choices": choices}, subsets=("all",), n_boot=50)[
        "metrics"
    ]
    table = objective_table(metrics, trials)
    assert list(dict.fromkeys(table["objective"])) == ["base", "rating", "pairwise"]
    assert set(table["trial_id"]) == {"base", "t1", "t4"}  # t2 is better held out but was not chosen
    for r in table.itertuples():
        source = metrics[
            (metrics["trial_id"] == r.trial_id)
            & (metrics["subset"] == "all")
            & (
                metrics["metric"]
                == {"mean Spearman": "mean_spearman", "rating RSA": "rsa", "colour accuracy": "accuracy"}[r.measure]
            )
        ].iloc[0]
        assert (r.value, r.ci_low, r.ci_high) == (source["value"], source["ci_low"], source["ci_high"])
        assert r.ci_low <= r.value <= r.ci_high
    spear = metrics[(metrics["metric"] == "spearman") & (metrics["trial_id"] == "t1")]["value"].mean()
    row = table[(table["trial_id"] == "t1") & (table["measure"] == "mean Spearman")].iloc[0]
    assert row["value"] == pytest.approx(spear, abs=1e-12)
    acc = table[table["measure"] == "colour accuracy"].set_index("trial_id")["value"]
    assert acc.to_dict() == pytest.approx({"base": 15 / 60, "t1": 30 / 60, "t4": 20 / 60})
    text = objective_text(table)
    assert list(text.index) == [("base", "base"), ("rating", "t1"), ("pairwise", "t4")]
    assert list(text.columns) == ["mean Spearman", "rating RSA", "colour accuracy"]
    low, high = row["ci_low"], row["ci_high"]
    assert text.loc[("rating", "t1"), "mean Spearman"] == f"{row['value']:.3f} [{low:.2f}, {high:.2f}]"


def test_layered_measures_get_a_column_per_layer():
    metrics = pd.DataFrame(
        [
            {
                "trial_id": t,
                "language": "en",
                "eval_set": "en/embeddings",
                "metric": "rsa_hidden",
                "subset": "all",
                "layer": layer,
                "value": v,
                "ci_low": v - 0.1,
                "ci_high": v + 0.1,
                "n": 9,
            }
            for t, v in (("base", 0.1), ("a", 0.3))
            for layer in (0, 5)
        ]
    )
    metrics["layer"] = metrics["layer"].astype("Int64")
    trials = pd.DataFrame({"trial_id": ["a"], "format": ["alignment"], "eval_score": [0.1]})
    text = objective_text(objective_table(metrics, trials, language="en"))
    assert list(text.columns) == ["hidden RSA L0", "hidden RSA L5"]
    assert text.loc[("alignment", "a"), "hidden RSA L5"] == "0.300 [0.20, 0.40]"
    assert objective_table(pd.DataFrame(), trials).empty


def test_a_run_with_several_objectives_gets_the_objectives_figure_and_table(rng, tmp_path, capsys, svg_texts):
    from grid.cli import main
    from grid.results import ResultsStore

    ratings, trials, choices = _run(rng)
    agg = aggregate({"ratings": ratings, "trials": trials, "choices": choices}, subsets=("all",), n_boot=50)
    run = tmp_path / "runs" / "search-0123456789"
    store = ResultsStore(str(run))
    for name, frame in (
        ("ratings", ratings.assign(condition=ratings["trial_id"])),
        ("metrics", agg["metrics"]),
        ("transfer", agg["transfer"]),
        ("trials", trials.assign(eval_on="validation", status="TERMINATED", model="m")),
    ):
        store.write(name, "all", frame)
    store.write_json("manifest.json", {"run_name": "search-0123456789", "status": "finished", "job": {}})
    assert main(["report", str(run), "--concepts", "8"]) == 0
    printed = capsys.readouterr().out
    assert "Best trial per objective on held-out concepts" in printed and "Paired differences" in printed
    assert "rating - pairwise" in printed and "pairwise - base" in printed
    table = objective_table(agg["metrics"], trials)
    texts = svg_texts(run / "report" / "figures" / "objectives.svg")
    assert {"mean Spearman", "rating RSA", "colour accuracy", "base", "rating", "pairwise"} <= set(texts)
    assert "eval score (mean Spearman, validation concepts)" in svg_texts(run / "report" / "figures" / "search.svg")
    html = (run / "report" / "index.html").read_text(encoding="utf-8")
    row = table[(table["trial_id"] == "t1") & (table["measure"] == "rating RSA")].iloc[0]
    assert f"{row['value']:.3f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" in html


def test_paired_differences_equal_a_naive_loop_over_the_same_draws(rng):
    from scipy import stats

    from embodiment.metrics import paired_difference

    n = 50
    human = rng.normal(size=n)
    a, b = human + rng.normal(scale=0.5, size=n), human + rng.normal(scale=0.8, size=n)
    rho = lambda m: lambda idx: stats.spearmanr(m[idx], human[idx]).statistic  # noqa: E731
    d = paired_difference(rho(a), rho(b), n, n_boot=200, seed=4)
    r = np.random.default_rng(4)
    boots = []
    for _ in range(200):
        idx = r.integers(0, n, size=n)
        boots.append(stats.spearmanr(a[idx], human[idx]).statistic - stats.spearmanr(b[idx], human[idx]).statistic)
    assert d.value == pytest.approx(stats.spearmanr(a, human).statistic - stats.spearmanr(b, human).statistic)
    assert (d.ci_low, d.ci_high) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])), abs=1e-12)
    assert d.p == pytest.approx(min(1.0, 2 * min(np.mean(np.array(boots) <= 0), np.mean(np.array(boots) >= 0))))
    assert d.n == n and d.ci_low < d.value < d.ci_high


def test_objective_differences_pair_the_best_trials_on_the_same_concepts_and_questions(rng):
    from grid.objectives import objective_differences

    ratings, trials, choices = _run(rng)
    tables = {"ratings": ratings, "trials": trials, "choices": choices}
    diffs = objective_differences(tables, n_boot=100, seed=1)
    metrics = aggregate(tables, subsets=("all",), n_boot=0)["metrics"]
    value = metrics[metrics["subset"] == "all"].set_index(["metric", "trial_id"])["value"]
    assert set(zip(diffs["a"], diffs["b"])) == {("rating", "base"), ("pairwise", "base"), ("rating", "pairwise")}
    for r in diffs.itertuples():
        metric = {"mean Spearman": "mean_spearman", "rating RSA": "rsa", "colour accuracy": "accuracy"}[r.measure]
        # the difference of the two models' own values (no concept is missing here)
        assert r.value == pytest.approx(value[(metric, r.a_trial)] - value[(metric, r.b_trial)], abs=1e-9)
        assert r.ci_low <= r.value <= r.ci_high and 0 <= r.p <= 1
        assert r.n == (60 if r.measure == "colour accuracy" else 40)
    # the rating trial (noise 1.0) beats the base (noise 4.0) well beyond the interval
    big = diffs[(diffs["measure"] == "mean Spearman") & (diffs["a"] == "rating") & (diffs["b"] == "base")].iloc[0]
    assert big["ci_low"] > 0 and big["p"] < 0.05
    assert objective_differences({"ratings": ratings, "trials": trials.iloc[:0]}).empty


def test_egrid_aggregate_recomputes_a_runs_metrics_from_its_tables_and_keeps_its_times(rng, tmp_path, capsys):
    from grid.cli import main
    from grid.results import ResultsStore

    ratings, trials, choices = _run(rng)
    job = {
        "name": "search",
        "models": ["m"],
        "norms": {"en": {"source": "embedded", "max_test": 40}},
        "conditions": [
            {"name": "rating", "format": "rating", "languages": ["en"]},
            {"name": "pairwise", "format": "pairwise", "languages": ["en"]},
        ],
        "evaluation": {"subsets": ["all"], "n_boot": 40},
        "seed": 3,
    }
    run = tmp_path / "search-0123456789"
    store = ResultsStore(str(run))
    store.write("ratings", "all", ratings.assign(condition=ratings["trial_id"]))
    store.write("choices", "all", choices)
    store.write("trials", "all", trials.assign(eval_on="validation", status="TERMINATED", model="m"))
    store.write_json("manifest.json", {"run_name": run.name, "status": "finished", "seconds": 4321.0, "job": job})
    assert main(["aggregate", str(run), "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "Best trial per objective" in printed and "Paired differences" in printed
    written = store.read("metrics")
    from embodiment.norms import load_norms
    from grid.aggregate import trained_on
    from grid.spec import parse_job

    trained = trained_on(parse_job(job).conditions, {"en": list(load_norms("embedded").dimensions)})
    expected = aggregate(
        {"ratings": store.read("ratings"), "choices": choices, "trials": store.read("trials")},
        subsets=("all",),
        n_boot=40,
        seed=3,
        trained=trained,
    )["metrics"]
    assert (expected["metric"] == "transfer_delta").any()
    key = ["trial_id", "metric", "dimension", "subset"]
    got = written.sort_values(key).reset_index(drop=True)
    want = expected.sort_values(key).reset_index(drop=True)
    assert len(got) == len(want) and np.allclose(got["value"], want["value"], equal_nan=True)
    assert np.allclose(got["ci_low"], want["ci_low"], equal_nan=True)
    manifest = store.read_json("manifest.json")
    assert manifest["seconds"] == 4321.0 and len(manifest["aggregated"]) == 1
    # not a run folder: one clear error, nothing written
    assert main(["aggregate", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_an_objective_with_a_head_shows_its_head_read_out_beside_its_prompts():
    rows = [
        {
            "trial_id": t,
            "language": "en",
            "eval_set": f"en/{where}",
            "metric": metric,
            "subset": "all",
            "layer": None,
            "value": v,
            "ci_low": v - 0.05,
            "ci_high": v + 0.05,
            "n": 30,
        }
        for t, where, metric, v in (
            ("base", "rating", "rsa", 0.01),
            ("r", "rating", "rsa", 0.02),
            ("r", "head", "head_rsa", 0.30),
            ("r", "head", "head_mean_spearman", 0.40),
        )
    ]
    metrics = pd.DataFrame(rows)
    trials = pd.DataFrame({"trial_id": ["r"], "format": ["regression"], "eval_score": [0.0]})
    text = objective_text(objective_table(metrics, trials, language="en"))
    assert list(text.columns) == ["rating RSA", "head mean Spearman", "head RSA"]
    assert text.loc[("regression", "r"), "head RSA"] == "0.300 [0.25, 0.35]"
    assert text.loc[("base", "base"), "head RSA"] == ""  # the base has no head

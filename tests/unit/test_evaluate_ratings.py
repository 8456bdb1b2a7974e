"""`egrid evaluate-ratings` on a table built from the shared norms: numbers equal scipy's."""

import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

from grid.cli import main


def test_evaluate_ratings_equals_scipy(tmp_path, ratings_table, capsys):
    path, norms, rows, dimensions = ratings_table
    out = tmp_path / "out"
    assert main(["evaluate-ratings", str(path), "--norms", str(norms), "--out", str(out), "--n-boot", "100"]) == 0
    printed = capsys.readouterr().out
    assert "Per-dimension Spearman" in printed and "Steiger" in printed and "notaword" in printed
    metrics = pq.read_table(out / "metrics.parquet").to_pandas()
    human = pd.read_csv(norms, keep_default_na=False)
    human["key"] = human["Word"].str.lower()
    for cond in ("base", "tuned"):
        sub = rows[(rows.condition == cond) & (rows.word != "notaword")]
        wide = sub.pivot(index="word", columns="dimension", values="rating")
        wide = wide.rename(columns={"foot": "Foot_leg", "hand": "Hand_arm"})
        h = human.set_index("key").loc[wide.index]
        for d in dimensions:
            got = metrics.query("condition == @cond and metric == 'spearman' and dimension == @d")
            assert len(got) == 1
            assert got["value"].iloc[0] == pytest.approx(stats.spearmanr(wide[d], h[f"{d}.mean"]).statistic, abs=1e-12)
            assert got["n"].iloc[0] == 400
        # RSA (study recipe) against scipy: zscore columns, cosine pdist, spearman
        z = lambda m: (m - m.mean(0)) / m.std(0, ddof=1)  # noqa: E731
        model_m = wide[dimensions].to_numpy()
        human_m = h[[f"{d}.mean" for d in dimensions]].to_numpy()
        ref = stats.spearmanr(pdist(z(model_m), "cosine"), pdist(z(human_m), "cosine")).statistic
        got = metrics.query("condition == @cond and metric == 'rsa' and subset == 'all'")["value"].iloc[0]
        assert got == pytest.approx(ref, abs=1e-10)
    transfer = pq.read_table(out / "transfer.parquet").to_pandas()
    assert set(transfer["condition"]) == {"tuned"} and len(transfer) == len(dimensions)
    assert (transfer["delta"] > 0).all() and (transfer["p"] < 0.01).all()
    vis = transfer.set_index("dimension").loc["Visual"]
    base_vis = metrics.query("condition == 'base' and metric == 'spearman' and dimension == 'Visual'")["value"].iloc[0]
    assert vis["base_value"] == pytest.approx(base_vis) and vis["delta"] == pytest.approx(vis["value"] - base_vis)
    ratings = pq.read_table(out / "ratings.parquet").to_pandas()
    assert len(ratings) == 2 * 400 * len(dimensions)


def test_evaluate_ratings_bad_column_is_one_line(tmp_path, ratings_table, capsys):
    path, norms, rows, _ = ratings_table
    bad = tmp_path / "bad.csv"
    rows.rename(columns={"rating": "score"}).to_csv(bad, index=False)
    out = tmp_path / "out"
    assert main(["evaluate-ratings", str(bad), "--norms", str(norms), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("egrid: error:") and str(bad) in err and "'rating'" in err and "--rating-column" in err
    assert not out.exists()
    # renaming the column makes it work
    assert (
        main(
            [
                "evaluate-ratings",
                str(bad),
                "--norms",
                str(norms),
                "--out",
                str(out),
                "--rating-column",
                "score",
                "--n-boot",
                "0",
            ]
        )
        == 0
    )


def test_evaluate_ratings_off_scale_ratings(tmp_path, ratings_table, capsys):
    path, norms, rows, _ = ratings_table
    bad = tmp_path / "bad.csv"
    rows.assign(rating=rows["rating"] * 3).to_csv(bad, index=False)
    assert main(["evaluate-ratings", str(bad), "--norms", str(norms), "--out", str(tmp_path / "o")]) == 2
    assert "off the norms' 0-5 scale" in capsys.readouterr().err


def test_paired_word_rule_drops_a_concept_missing_in_any_condition_from_all(tmp_path, ratings_table):
    """The study's rule: 'tuned' lacks 30 words' Visual ratings and 10 words entirely; by
    default every condition's Visual Spearman, its Steiger test and every RSA stand on the
    concepts both conditions have (n says how many); --unpaired keeps each its own."""
    path, norms, rows, dimensions = ratings_table
    words = sorted(set(rows["word"]) - {"notaword"})
    no_visual, gone = set(words[:30]), set(words[30:40])
    keep = ~(
        (rows["condition"] == "tuned")
        & (((rows["dimension"] == "Visual") & rows["word"].isin(no_visual)) | rows["word"].isin(gone))
    )
    holed = tmp_path / "holed.csv"
    rows[keep].to_csv(holed, index=False)
    human = pd.read_csv(norms, keep_default_na=False)
    human["key"] = human["Word"].str.lower()
    h = human.set_index("key")
    out = {}
    for mode, extra in (("paired", []), ("unpaired", ["--unpaired"])):
        assert (
            main(
                [
                    "evaluate-ratings",
                    str(holed),
                    "--norms",
                    str(norms),
                    "--out",
                    str(tmp_path / mode),
                    "--n-boot",
                    "20",
                    *extra,
                ]
            )
            == 0
        )
        out[mode] = (
            pq.read_table(tmp_path / mode / "metrics.parquet").to_pandas(),
            pq.read_table(tmp_path / mode / "transfer.parquet").to_pandas(),
        )

    def oracle(cond, dim, exclude):
        sub = rows[(rows.condition == cond) & (rows.dimension == dim) & ~rows.word.isin(exclude | {"notaword"})]
        return stats.spearmanr(sub["rating"], h.loc[sub["word"], f"{dim}.mean"]).statistic, len(sub)

    metrics, transfer = out["paired"]
    for cond in ("base", "tuned"):
        for dim, exclude in (("Visual", no_visual | gone), ("Auditory", gone)):
            value, n = oracle(cond, dim, exclude)
            got = metrics.query("condition == @cond and metric == 'spearman' and dimension == @dim").iloc[0]
            assert got["value"] == pytest.approx(value, abs=1e-12) and got["n"] == n
    rsa_n = metrics.query("metric == 'rsa' and subset == 'all'").set_index("condition")["n"]
    assert rsa_n["base"] == rsa_n["tuned"] == 400 - 40
    visual = transfer.set_index("dimension").loc["Visual"]
    assert visual["n"] == 400 - 40 and visual["base_value"] == pytest.approx(
        oracle("base", "Visual", no_visual | gone)[0]
    )

    metrics, _ = out["unpaired"]
    base_visual = metrics.query("condition == 'base' and metric == 'spearman' and dimension == 'Visual'").iloc[0]
    assert base_visual["n"] == 400 and base_visual["value"] == pytest.approx(
        oracle("base", "Visual", set())[0], abs=1e-12
    )
    rsa_n = metrics.query("metric == 'rsa' and subset == 'all'").set_index("condition")["n"]
    assert rsa_n["base"] == 400 and rsa_n["tuned"] == 400 - 40


def test_conditions_that_rated_different_words_stop_with_one_line_naming_unpaired(tmp_path, ratings_table, capsys):
    """A few-shot design: each condition rated its own words, so none is common to all."""
    path, norms, rows, _ = ratings_table
    words = sorted(set(rows["word"]) - {"notaword"})
    own = rows[rows["condition"] == "base"].copy()
    parts = []
    for k in range(4):  # four conditions, disjoint words
        part = own[own["word"].isin(words[k::4])].assign(condition=f"shot{k}")
        parts.append(part)
    table = tmp_path / "fewshot.csv"
    pd.concat(parts).to_csv(table, index=False)
    out = tmp_path / "out"
    assert main(["evaluate-ratings", str(table), "--norms", str(norms), "--out", str(out), "--n-boot", "0"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("egrid: error:")]
    assert len(errors) == 1 and "--unpaired" in errors[0] and "leaves 0 word(s)" in errors[0]
    assert not (out / "metrics.parquet").exists()
    assert (
        main(["evaluate-ratings", str(table), "--norms", str(norms), "--out", str(out), "--n-boot", "0", "--unpaired"])
        == 0
    )
    metrics = pq.read_table(out / "metrics.parquet").to_pandas()
    assert metrics.query("metric == 'spearman'")["value"].notna().all()

"""The aggregate stage's hidden-state metrics: RSA of held-out concepts only, and the
ridge probe fitted on the training concepts' vectors, equal to fitting it by hand."""

import numpy as np
import pandas as pd
import pytest

from scipy import stats

from embodiment.metrics import rsa
from embodiment.norms import Norms
from embodiment.probe import fit_ridge
from grid.aggregate import aggregate

pytestmark = pytest.mark.unit
DIMS = ["Visual", "Haptic", "Auditory"]


def _tables(rng):
    words = [f"w{i}" for i in range(90)]
    human = rng.uniform(0, 5, size=(90, 3))
    vectors = np.column_stack([human @ rng.normal(size=(3, 8)), rng.normal(size=(90, 4))]) + 0.5 * rng.normal(
        size=(90, 12)
    )
    train, test = slice(0, 60), slice(60, 90)
    ratings = pd.DataFrame(
        [
            {
                "trial_id": "base",
                "model": "m",
                "language": "en",
                "concept": w,
                "dimension": d,
                "human": human[60 + i, j],
                "expected": human[60 + i, j] + rng.normal(),
            }
            for i, w in enumerate(words[test])
            for j, d in enumerate(DIMS)
        ]
    )
    emb = pd.DataFrame(
        [
            {
                "trial_id": "base",
                "model": "m",
                "language": "en",
                "concept": w,
                "layer": layer,
                "pooling": "mean",
                "split": "train" if k < 60 else "test",
                "vector": (vectors[k] * (layer + 1)).tolist(),
            }
            for layer in (0, 3)
            for k, w in enumerate(words)
        ]
    )
    return words, human, vectors, ratings, emb, Norms(words[train], DIMS, human[train], "en", "x")


def test_probe_rows_equal_a_probe_fitted_by_hand_and_hidden_rsa_reads_held_out_rows_only(rng):
    words, human, vectors, ratings, emb, train_norms = _tables(rng)
    metrics = aggregate(
        {"ratings": ratings, "embeddings": emb}, subsets=("all",), n_boot=30, seed=2, train_norms={"en": train_norms}
    )["metrics"]
    for layer in (0, 3):
        x = vectors * (layer + 1)
        pred = fit_ridge(x[:60], human[:60], seed=2).predict(x[60:])  # the probe fitted by hand
        oracle = rsa(pred, human[60:], "wu2026", n_boot=30, seed=2)
        row = metrics[(metrics["metric"] == "probe_rsa") & (metrics["layer"] == layer)].iloc[0]
        assert row["value"] == pytest.approx(oracle.value, abs=1e-12) and row["n"] == 30 and row["subset"] == "all"
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((oracle.ci_low, oracle.ci_high))
        assert row["eval_set"] == "en/probe" and row["condition"] == "base"
        sp = metrics[(metrics["metric"] == "probe_spearman") & (metrics["layer"] == layer)].set_index("dimension")
        for j, dim in enumerate(DIMS):
            assert sp.at[dim, "value"] == pytest.approx(stats.spearmanr(pred[:, j], human[60:, j]).statistic, abs=1e-12)
            assert sp.at[dim, "recipe"].startswith("ridge alpha=") and sp.at[dim, "ci_low"] <= sp.at[dim, "value"]
        hidden = metrics[(metrics["metric"] == "rsa_hidden") & (metrics["layer"] == layer)].iloc[0]
        plain = rsa(
            x[60:], human[60:], {"standardise": "none", "rdm": "cosine", "compare": "spearman"}, n_boot=30, seed=2
        )
        assert hidden["value"] == pytest.approx(plain.value, abs=1e-12) and hidden["n"] == 30
        assert (hidden["ci_low"], hidden["ci_high"]) == pytest.approx((plain.ci_low, plain.ci_high), abs=1e-12)
    assert metrics.loc[metrics["metric"] == "probe_rsa", "value"].min() > 0.3  # the signal is linear: found


def test_without_training_norms_or_training_rows_there_is_no_probe(rng):
    _, _, _, ratings, emb, train_norms = _tables(rng)
    metrics = aggregate({"ratings": ratings, "embeddings": emb}, subsets=("all",), n_boot=0)["metrics"]
    assert not metrics["metric"].str.startswith("probe").any() and (metrics["metric"] == "rsa_hidden").sum() == 2
    old = emb[emb["split"] == "test"].drop(columns="split")  # a table written before the probe existed
    metrics = aggregate(
        {"ratings": ratings, "embeddings": old}, subsets=("all",), n_boot=0, train_norms={"en": train_norms}
    )["metrics"]
    assert not metrics["metric"].str.startswith("probe").any() and (metrics["metric"] == "rsa_hidden").sum() == 2


def test_a_trial_minus_the_probe_is_paired_on_the_same_concepts_at_the_cv_layer(rng):
    """minus_probe rows: the trial's ratings against the probe's predictions at the layer of
    least cross-validated error, scored by hand with scipy and the same RSA."""
    from embodiment.metrics import mean_correlation
    from grid.hidden_states import probe_layer

    words, human, vectors, ratings, emb, train_norms = _tables(rng)
    tuned = ratings.assign(trial_id="t1", expected=ratings["human"] + 0.3 * rng.normal(size=len(ratings)))
    metrics = aggregate(
        {"ratings": pd.concat([ratings, tuned]), "embeddings": emb},
        subsets=("all",),
        n_boot=200,
        seed=2,
        train_norms={"en": train_norms},
    )["metrics"]
    layer = probe_layer(metrics, "en")
    cv = metrics[metrics["metric"] == "probe_cv_error"].set_index("layer")["value"]
    assert layer == cv.idxmin()
    x = vectors * (layer + 1)
    pred = fit_ridge(x[:60], human[:60], seed=2).predict(x[60:])
    mine = tuned.pivot(index="concept", columns="dimension", values="expected").loc[words[60:], DIMS].to_numpy()
    for metric, stat in (
        ("minus_probe_mean_spearman", lambda m: mean_correlation(m, human[60:]).r),
        ("minus_probe_rsa", lambda m: rsa(m, human[60:], "wu2026").value),
    ):
        row = metrics[(metrics["metric"] == metric) & (metrics["trial_id"] == "t1")].iloc[0]
        assert row["layer"] == layer and row["n"] == 30
        assert row["value"] == pytest.approx(stat(mine) - stat(pred), abs=1e-12)
        assert row["ci_low"] < row["value"] < row["ci_high"] and row["alternative"] == "two-sided"


def test_hidden_states_read_a_layer_at_a_time_from_the_store_give_the_in_memory_metrics(rng, tmp_path):
    from grid.hidden_states import EmbeddingLayers
    from grid.results import ResultsStore

    _, _, _, ratings, emb, norms = _tables(rng)
    store = ResultsStore(str(tmp_path / "run"))
    half = len(emb) // 3  # two files, each holding rows of both layers
    store.write("embeddings", "a", emb.iloc[:half].reset_index(drop=True))
    store.write("embeddings", "b", emb.iloc[half:].reset_index(drop=True))
    import pyarrow.parquet as pq

    groups = []
    for path in sorted((tmp_path / "run" / "tables" / "embeddings").glob("*.parquet")):  # a row group per layer
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.names.index("layer")
        groups.append([meta.row_group(g).column(column).statistics for g in range(meta.num_row_groups)])
    assert sorted(len(g) for g in groups) == [1, 2]  # key a: layer 0 only; key b: both layers
    assert all(st.min == st.max for g in groups for st in g)
    stored = EmbeddingLayers(store=store)
    assert stored.layers() == [0, 3]
    layer = stored.layer(3)
    assert set(layer["layer"]) == {3} and len(layer) == (emb["layer"] == 3).sum()  # only that layer's rows
    kwargs = dict(subsets=("all",), n_boot=50, seed=0, train_norms={"en": norms})
    as_stored = emb.assign(vector=[np.asarray(v, dtype=np.float32) for v in emb["vector"]])  # the store's float32
    from_memory = aggregate({"ratings": ratings, "embeddings": as_stored}, **kwargs)["metrics"]
    from_store = aggregate({"ratings": ratings, "embeddings": stored}, **kwargs)["metrics"]
    keys = ["trial_id", "metric", "subset", "dimension", "layer"]
    a = from_memory.sort_values(keys).reset_index(drop=True)
    b = from_store.sort_values(keys).reset_index(drop=True)
    assert len(a) == len(b) and (a["layer"].dropna().astype(int).isin([0, 3])).all()
    np.testing.assert_allclose(a["value"].to_numpy(float), b["value"].to_numpy(float), rtol=0, atol=1e-12)


def test_the_baseline_lines_quote_the_aggregates_figures_at_the_probes_cv_layer(rng):
    """The run's first lines draw CIs only for what they print, yet print exactly what the
    full aggregate gives: the rating RSA, and the probe at its least cross-validated error."""
    from types import SimpleNamespace

    from grid.console import ci_text
    from grid.hidden_states import probe_layer
    from grid.runner import _say_baseline

    words, human, vectors, ratings, emb, norms = _tables(rng)
    noisy = emb["layer"] == 3  # a worse layer: the probe's choice is not a tie
    emb["vector"] = [
        list(np.asarray(v) + rng.normal(scale=4.0, size=len(v))) if bad else v for v, bad in zip(emb["vector"], noisy)
    ]
    evaluated = {"ratings": ratings, "embeddings": emb}
    spec = SimpleNamespace(evaluation=SimpleNamespace(rsa_recipe="wu2026", n_boot=200), seed=0)
    printed = []
    _say_baseline(spec, {"en": SimpleNamespace(train=norms)}, evaluated, printed.append)

    full = aggregate(evaluated, subsets=("all",), n_boot=200, seed=0, train_norms={"en": norms})["metrics"]
    layer = probe_layer(full, "en")
    assert layer == 0
    rating = full[(full["metric"] == "rsa") & (full["subset"] == "all")].iloc[0]
    probe = full[(full["metric"] == "probe_rsa") & (full["subset"] == "all") & (full["layer"] == layer)].iloc[0]
    assert printed[0].startswith(f"baseline (en, 30 held-out concepts): RSA {ci_text(rating)},")
    assert printed[1].startswith(f"frozen probe (en, ridge on layer {layer} of the base model,")
    assert printed[1].endswith(f"RSA {ci_text(probe)}")

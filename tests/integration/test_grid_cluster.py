"""A small grid on a two-node local Ray cluster: Tune trials whose TorchTrainers run two
DeepSpeed ranks each, Ray Data evaluation, the results actor, Parquet read back row by row."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file
from scipy import stats

from embodiment.metrics.rsa import STUDY_RECIPE, rsa
from grid.cli import main as egrid
from grid.data import prepare_norms
from grid.runner import run_job
from grid.job_file import load_job

TABLES = ("trials", "ratings", "metrics", "transfer", "embeddings")


#: MLflow tracking rides on this run where mlflow is installed (the test extras have it)
HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir, make_job, two_node_cluster):
    """One grid run on a head and a worker node of 2 CPUs each, shared by this module's tests."""
    import ray

    folder = tmp_path_factory.mktemp("grid")
    # the colour questions only for the best trial of each objective (and the base)
    extra = {"tune": {"mlflow": "run"}} if HAS_MLFLOW else {}
    job = make_job(
        folder / "job.yaml",
        tiny_model_dir,
        str(folder / "runs"),
        mcq={"test": "wu2026:mcq-test"},
        evaluation={"best_only": ["mcq"]},
        **extra,
    )
    spec = load_job(job)
    summary = run_job(spec, address=two_node_cluster.address, say=print)
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    return spec, summary, nodes


@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow not installed (pip install mlflow-skinny)")
def test_mlflow_gets_one_run_per_trial_with_its_score(finished_run):
    """``tune: {mlflow: run}``: one MLflow run per trial, with its score and learning rate."""
    import mlflow

    spec, summary, _ = finished_run
    run_dir = Path(summary["run_dir"])
    trials = pd.read_parquet(run_dir / "tables" / "trials")
    client = mlflow.tracking.MlflowClient(tracking_uri=(run_dir / "mlruns").as_uri())  # the run's file store
    experiment = client.get_experiment_by_name(spec.run_name)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == len(trials) == 2
    by_trial = {r.data.tags.get("trial_name", r.info.run_name): r for r in runs}
    for row in trials.itertuples():
        run = next(r for name, r in by_trial.items() if row.trial_id in name)
        assert run.data.metrics["eval_score"] == pytest.approx(row.eval_score)
        assert float(run.data.params["learning_rate"]) in (1.0e-3, 3.0e-3)


def test_grid_on_two_nodes_writes_every_row_once(finished_run, capsys, svg_texts):
    spec, summary, nodes = finished_run
    run_dir = Path(summary["run_dir"])
    tables = {t: pd.read_parquet(run_dir / "tables" / t) for t in TABLES}

    # Trials: both finished, each with two DeepSpeed ranks; together they used both nodes.
    trials = tables["trials"]
    assert len(trials) == 2 and set(trials["status"]) == {"TERMINATED"}
    assert len(nodes) == 2
    worker_nodes = [row.split(",") for row in trials["worker_nodes"]]
    assert all(len(ranks) == 2 for ranks in worker_nodes)
    assert set().union(*worker_nodes) == nodes
    for adapter in trials["adapter"]:
        weights = load_file(str(Path(adapter) / "adapter_model.safetensors"))
        lora_b = [v for k, v in weights.items() if "lora_B" in k]
        assert lora_b and any(np.abs(v).sum() > 0 for v in lora_b)

    # Ratings: every (trial, concept, dimension) of the held-out split exactly once.
    data = prepare_norms(spec.norms, spec.seed)["en"].test
    ratings = tables["ratings"]
    ids = ["base", *trials["trial_id"]]
    assert set(ratings["trial_id"]) == set(ids)
    assert not ratings.duplicated(["trial_id", "concept", "dimension"]).any()
    assert len(ratings) == len(ids) * len(data.words) * len(data.dimensions)
    assert set(ratings["concept"]) == set(data.words)
    human = pd.DataFrame(data.means, index=data.words, columns=data.dimensions)
    np.testing.assert_allclose(
        ratings["human"], [human.at[w, d] for w, d in zip(ratings["concept"], ratings["dimension"])]
    )
    probs = ratings[[f"p{k}" for k in range(6)]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ratings["expected"], probs @ np.arange(6), atol=1e-5)

    # Metrics: each Spearman equals scipy's on the ratings table; RSA equals the study recipe.
    metrics = tables["metrics"]
    spearman = metrics[metrics["metric"] == "spearman"]
    assert len(spearman) == len(ids) * len(data.dimensions)
    for row in spearman.itertuples():
        r = ratings[(ratings["trial_id"] == row.trial_id) & (ratings["dimension"] == row.dimension)]
        assert row.value == pytest.approx(stats.spearmanr(r["expected"], r["human"]).statistic, abs=1e-9)
        assert row.n == len(data.words)
    for trial_id in ids:
        wide = ratings[ratings["trial_id"] == trial_id].pivot(index="concept", columns="dimension", values="expected")
        expected = rsa(wide.loc[data.words, data.dimensions].to_numpy(), data.means, STUDY_RECIPE).value
        got = metrics[(metrics["metric"] == "rsa") & (metrics["trial_id"] == trial_id) & (metrics["subset"] == "all")]
        assert got["value"].tolist() == [pytest.approx(expected, abs=1e-9)]

    # Transfer: delta against base for every trained trial and dimension.
    transfer = tables["transfer"]
    assert len(transfer) == 2 * len(data.dimensions)
    base = spearman[spearman["trial_id"] == "base"].set_index("dimension")["value"]
    for row in transfer.itertuples():
        assert row.base_value == pytest.approx(base[row.dimension])
        assert row.delta == pytest.approx(row.value - row.base_value)
        assert 0.0 <= row.p <= 1.0

    # Embeddings: every (trial, concept, layer, pooling) once, hidden size 32; the base
    # model's training concepts too (split 'train'), for the probe.
    emb = tables["embeddings"]
    assert not emb.duplicated(["trial_id", "concept", "layer", "pooling"]).any()
    assert set(emb["layer"]) == {0, 2}
    test_emb = emb[emb["split"] == "test"]
    assert len(test_emb) == len(ids) * len(data.words) * 2 * emb["pooling"].nunique()
    assert set(test_emb["concept"]) == set(data.words)
    train = prepare_norms(spec.norms, spec.seed)["en"].train
    train_emb = emb[emb["split"] == "train"]
    assert set(train_emb["trial_id"]) == {"base"} and set(train_emb["concept"]) == set(train.words)
    assert not set(train.words) & set(prepare_norms(spec.norms, spec.seed)["en"].validation.words)
    assert set(emb["vector"].map(len)) == {32}

    # The probe: per base layer, a ridge fitted on the training concepts' vectors and
    # scored on the held-out ones, equal to fitting it here from the tables.
    from embodiment.probe import fit_ridge

    probe = metrics[(metrics["metric"] == "probe_rsa") & (metrics["subset"] == "all")]
    assert set(probe["trial_id"]) == {"base"} and sorted(probe["layer"]) == [0, 2]
    for row in probe.itertuples():

        def vectors(part, words):
            part = part[(part["layer"] == row.layer) & (part["trial_id"] == "base")].set_index("concept")
            return np.stack([np.asarray(part.at[w, "vector"]) for w in words])

        pred = fit_ridge(vectors(train_emb, train.words), train.means, seed=spec.seed).predict(
            vectors(test_emb, data.words)
        )
        assert row.value == pytest.approx(rsa(pred, data.means, spec.evaluation.rsa_recipe).value, abs=1e-9)
        assert row.ci_low <= row.value <= row.ci_high
    assert len(metrics[metrics["metric"] == "probe_spearman"]) == 2 * len(data.dimensions)
    # trials are scored for the searcher on the validation concepts, never the held-out ones:
    # each eval_score is the mean Spearman of its stored validation ratings, recomputed here
    assert set(trials["eval_on"]) == {"validation"}
    validation = pd.read_parquet(run_dir / "tables" / "validation_ratings")
    held_back = set(prepare_norms(spec.norms, spec.seed)["en"].validation.words)
    assert set(validation["concept"]) == held_back and not held_back & set(data.words)
    for row in trials.itertuples():
        own = validation[validation["trial_id"] == row.trial_id]
        rho = [
            stats.spearmanr(g["expected"], g["human"]).statistic if g["expected"].nunique() > 1 else 0.0
            for _, g in own.groupby("dimension")
        ]  # a collapsed dimension counts 0
        assert row.eval_score == pytest.approx(np.mean(rho), abs=1e-12)

    # evaluation.best_only: the colour questions for the base and the best trial alone,
    # each question once per model; its accuracy is the table's share of correct answers.
    choices = pd.read_parquet(run_dir / "tables" / "choices")
    best = trials.loc[trials["eval_score"].idxmax(), "trial_id"]
    assert set(choices["trial_id"]) == {"base", best}
    per_item = choices.drop_duplicates(["trial_id", "index"])
    assert per_item.groupby("trial_id").size().tolist() == [560, 560]
    accuracy = metrics[metrics["metric"] == "accuracy"].set_index("trial_id")["value"]
    assert set(accuracy.index) == {"base", best}
    for trial_id, value in accuracy.items():
        assert value == pytest.approx(per_item[per_item["trial_id"] == trial_id]["is_correct"].mean())

    # The same tables as DuckDB and pyarrow read them, as they are.
    for table, frame in tables.items():
        count = duckdb.sql(f"select count(*) from read_parquet('{run_dir}/tables/{table}/*.parquet')").fetchall()[0][0]
        assert count == len(frame)

    # `egrid status` reads the run back.
    assert egrid(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "terminated 2" in out and "best per objective" in out
    # ... from Tune's JSON state alone: each trial's last training step and loss, and its score
    from grid.internals import read_trial_states

    states = {t["trial_id"]: t for t in read_trial_states(run_dir / "tune")}
    assert set(states) == set(trials["trial_id"])
    for row in trials.itertuples():
        state = states[row.trial_id]
        assert state["status"] == "TERMINATED" and state["training"]["step"] == row.steps
        assert state["training"]["loss"] == pytest.approx(row.loss_last, rel=0.5)
        assert state["last_result"]["eval_score"] == pytest.approx(row.eval_score)
    for trial_id in trials["trial_id"]:  # TensorBoard: Tune's own event files, one folder per trial
        assert list((run_dir / "tune").glob(f"trial_{trial_id}_*/events.out.tfevents.*")), trial_id
    assert egrid(["status", str(run_dir), "--watch", "0.1"]) == 0  # a finished run: one page, no loop
    assert capsys.readouterr().out.count("run itest-") == 1

    # `egrid report` draws the run: the search over both trials, RSA per hidden layer.
    assert egrid(["report", str(run_dir), "--concepts", "8"]) == 0
    out = capsys.readouterr().out
    assert "Best trial per objective" in out and "Missing:" not in out
    figures = run_dir / "report" / "figures"
    assert {p.stem for p in figures.glob("*.svg")} == {
        "spearman_by_dimension",
        "rsa_by_subset",
        "rsa_by_layer",
        "transfer_matrix",
        "transfer_groups",
        "rdm_heatmaps",
        "wordwise_similarity",
        "search",
        "mcq_accuracy",
        "against_probe",
    }
    best = tables["trials"].loc[tables["trials"]["eval_score"].idxmax()]
    hidden = metrics[(metrics["metric"] == "rsa_hidden") & metrics["trial_id"].isin(["base", best["trial_id"]])]
    assert len(hidden) == 2 * 2 and {f"{v:.2f}" for v in hidden["value"]} <= set(
        svg_texts(figures / "rsa_by_layer.svg")
    )
    assert f"best {best['eval_score']:.3f}" in svg_texts(figures / "search.svg")
    # the trial against the frozen probe: the paired difference the metrics table holds, drawn
    diff = metrics[(metrics["metric"] == "minus_probe_rsa") & (metrics["trial_id"] == best["trial_id"])]["value"]
    assert len(diff) == 1 and f"{diff.iloc[0]:+.2f}" in svg_texts(figures / "against_probe.svg")

    # docs/analysis.md works as written on this run: every snippet, in order.
    _check_analysis_guide(run_dir, tables, capsys)


def _run_analysis_guide(run_dir: Path) -> dict:
    """Execute every ```python block of docs/analysis.md in one namespace, with the run
    folder in place of the guide's example path."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 6
    namespace: dict = {}
    for code in blocks:
        code = re.sub(r'^(run|other) = ".*?"', lambda m: f"{m.group(1)} = {str(run_dir)!r}", code, flags=re.M)
        exec(compile(code, "docs/analysis.md", "exec"), namespace)  # noqa: S102 - our own document
    return namespace


def _check_analysis_guide(run_dir: Path, tables: dict, capsys) -> None:
    ns = _run_analysis_guide(run_dir)
    capsys.readouterr()
    trials, metrics, ratings = tables["trials"], tables["metrics"], tables["ratings"]
    # best trial per objective: the highest validation score of each format (a loop)
    for row in ns["best"].itertuples():
        scores = {t.trial_id: t.eval_score for t in trials.itertuples() if t.format == row.format}
        assert row.trial_id == max(scores, key=scores.get)
    assert set(ns["best"]["format"]) == set(trials["format"])
    # per-dimension Spearman with CIs: each cell is the metrics row
    table = ns["per_dimension"]
    for trial_id in ["base", *ns["best"]["trial_id"]]:
        for dim in table.index:
            row = metrics[
                (metrics["metric"] == "spearman") & (metrics["trial_id"] == trial_id) & (metrics["dimension"] == dim)
            ].iloc[0]
            assert table.loc[dim, ("value", trial_id)] == pytest.approx(row["value"])
            assert (
                table.loc[dim, ("ci_low", trial_id)]
                <= table.loc[dim, ("value", trial_id)]
                <= table.loc[dim, ("ci_high", trial_id)]
            )
    # the objective table: base and the best trial, each value the metrics row's
    objectives = ns["objectives"]
    assert set(objectives["trial_id"]) == {"base", *ns["best"]["trial_id"]}
    for r in objectives[objectives["measure"] == "mean Spearman"].itertuples():
        mean = metrics[(metrics["metric"] == "spearman") & (metrics["trial_id"] == r.trial_id)]["value"].mean()
        assert r.value == pytest.approx(mean) and r.ci_low <= r.value <= r.ci_high
    diff = ns["differences"].set_index(["measure", "a", "b"])
    rsa_all = metrics[(metrics["metric"] == "rsa") & (metrics["subset"] == "all")].set_index("trial_id")["value"]
    best_id = ns["best"]["trial_id"].iloc[0]
    assert diff.loc[("rating RSA", "rating", "base"), "value"] == pytest.approx(
        rsa_all[best_id] - rsa_all["base"], abs=1e-9
    )
    # RSA by layer, hidden states and probe: every such metrics row, once
    by_layer = ns["by_layer"]
    expected = metrics[metrics["metric"].isin(["rsa_hidden", "probe_rsa"]) & (metrics["subset"] == "all")]
    assert len(by_layer) == len(expected) > 0
    assert sorted(by_layer["rsa"]) == pytest.approx(sorted(expected["value"].round(3)))
    # one concept across models: its expected ratings, read with a filter
    concept = ns["concept"]
    for (dim, trial_id), value in ns["one_concept"]["expected"].stack().items():
        assert value == pytest.approx(
            ratings[
                (ratings["concept"] == concept) & (ratings["dimension"] == dim) & (ratings["trial_id"] == trial_id)
            ]["expected"].iloc[0]
        )
    assert ns["one_concept"]["expected"].shape == (ratings["dimension"].nunique(), ratings["trial_id"].nunique())
    # two runs side by side (the same run twice): equal columns, the metrics' RSA
    side = ns["side_by_side"]
    assert list(side.columns) == ["A", "B"] and (side["A"] == side["B"]).all()
    base_rsa = metrics[(metrics["trial_id"] == "base") & (metrics["metric"] == "rsa") & (metrics["subset"] == "all")]
    assert side.loc[("base", base_rsa["eval_set"].iloc[0]), "A"] == pytest.approx(base_rsa["value"].iloc[0])

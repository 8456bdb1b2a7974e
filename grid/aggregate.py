"""The aggregate stage: metrics, RSA (ratings and hidden states by layer), transfer
tables against the base model, MCQ accuracy and the best trial per objective -- all
computed from the stored tables, so it can rerun at any time (e.g. on a partial run)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from embodiment.evaluate import EvaluationOptions, evaluate_joined
from embodiment.metrics import rsa
from embodiment.ratings import JoinedRatings

BASE = "base"


def summary_score(evaluated: dict[str, pd.DataFrame]) -> float:
    """One number per trial for the searcher: mean held-out Spearman over (language, dimension),
    or MCQ accuracy when only choices were evaluated."""
    from embodiment.formats.base import mean_spearman

    ratings = evaluated.get("ratings")
    if ratings is not None and len(ratings):
        return mean_spearman(ratings)
    choices = evaluated.get("choices")
    if choices is not None and len(choices):
        return float(choices.drop_duplicates("index")["is_correct"].mean())
    return float("nan")


def _joined(ratings: pd.DataFrame, model: str, language: str) -> JoinedRatings:
    """Conditions (base + trials) of one model and language as aligned matrices."""
    part = ratings[(ratings["model"] == model) & (ratings["language"] == language)]
    words = sorted(part["concept"].unique())
    dims = list(dict.fromkeys(part["dimension"]))
    human = part.drop_duplicates(["concept", "dimension"]).pivot(index="concept", columns="dimension", values="human")
    human = human.loc[words, dims].to_numpy()
    model_m = {}
    for trial_id, g in part.groupby("trial_id", sort=False):
        wide = g.pivot(index="concept", columns="dimension", values="expected").reindex(index=words, columns=dims)
        model_m[str(trial_id)] = wide.to_numpy()
    long = part.rename(columns={"concept": "word", "expected": "rating", "trial_id": "condition"})[
        ["condition", "word", "dimension", "rating", "human"]]
    return JoinedRatings(words, dims, human, model_m, [], long)


def aggregate(tables: dict[str, pd.DataFrame], *, rsa_recipe: str = "wu2026", subsets=("all", "sensory", "motor"),
              n_boot: int = 200, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Metrics and transfer tables from the ratings, embeddings and choices tables.

    Returns:
        ``metrics`` and ``transfer`` frames, each with ``model`` and ``trial_id`` columns
        (``trial_id`` is ``base`` for the untrained model).
    """
    metrics, transfer = [], []
    ratings = tables.get("ratings", pd.DataFrame())
    trials = tables.get("trials", pd.DataFrame())
    cond_of = dict(zip(trials.get("trial_id", []), trials.get("condition", [])))
    cond_of[BASE] = BASE
    if len(ratings):
        for (model, language), _ in ratings.groupby(["model", "language"], sort=False):
            joined = _joined(ratings, model, language)
            options = EvaluationOptions(base=BASE if BASE in joined.model else None, n_boot=n_boot, rsa_recipe=rsa_recipe,
                                        rsa_subsets=subsets, seed=seed, eval_set=f"{language}/rating")
            out = evaluate_joined(joined, options)
            m = out["metrics"].rename(columns={"condition": "trial_id"})
            metrics.append(m.assign(model=model, language=language, condition=m["trial_id"].map(cond_of)))
            if len(out["transfer"]):
                t = out["transfer"].rename(columns={"condition": "trial_id"})
                transfer.append(t.assign(model=model, language=language, condition=t["trial_id"].map(cond_of)))
    emb = tables.get("embeddings", pd.DataFrame())
    if len(emb) and len(ratings):
        human = ratings.drop_duplicates(["language", "concept", "dimension"])
        for (model, trial_id, language, layer), g in emb.groupby(["model", "trial_id", "language", "layer"], sort=False):
            h = human[human["language"] == language].pivot(index="concept", columns="dimension", values="human")
            g = g[g["concept"].isin(h.index)]
            if len(g) < 3:
                continue
            vectors = np.stack(g["vector"].map(np.asarray).to_list())
            res = rsa(vectors, h.loc[g["concept"]].to_numpy(), {"standardise": "none", "rdm": "cosine", "compare": "spearman",
                                                                 "name": "hidden-vs-human"})
            metrics.append(pd.DataFrame([{"trial_id": trial_id, "condition": cond_of.get(trial_id, trial_id), "model": model,
                                          "language": language, "eval_set": f"{language}/embeddings", "metric": "rsa_hidden",
                                          "subset": "all", "layer": int(layer), "recipe": res.recipe.name,
                                          "standardise": "none", "rdm_method": "cosine", "compare_method": "spearman",
                                          "value": res.value, "n": res.n_concepts, "n_dropped": res.n_dropped}]))
    choices = tables.get("choices", pd.DataFrame())
    if len(choices):
        per_item = choices.drop_duplicates(["model", "trial_id", "index"])
        acc = per_item.groupby(["model", "trial_id"], sort=False)["is_correct"].agg(["mean", "size"]).reset_index()
        metrics.append(pd.DataFrame({"trial_id": acc["trial_id"], "condition": acc["trial_id"].map(cond_of), "model": acc["model"],
                                     "eval_set": "mcq", "metric": "accuracy", "subset": "all", "value": acc["mean"],
                                     "n": acc["size"]}))
    metrics_df = pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame()
    if len(metrics_df):
        metrics_df["layer"] = metrics_df["layer"].astype("Int64")
        for col in ("n", "n_dropped"):
            metrics_df[col] = metrics_df[col].astype("Int64")
    return {"metrics": metrics_df, "transfer": pd.concat(transfer, ignore_index=True) if transfer else pd.DataFrame()}


def best_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The best trial (highest eval_score) per learning objective (format)."""
    if trials.empty or "eval_score" not in trials:
        return trials
    done = trials.dropna(subset=["eval_score"])
    return done.loc[done.groupby("format")["eval_score"].idxmax()].reset_index(drop=True)

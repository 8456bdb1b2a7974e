"""The aggregate stage: metrics, RSA (ratings and hidden states by layer), transfer
tables against the base model, MCQ accuracy and the best trial per objective -- all
computed from the stored tables, so it can rerun at any time (e.g. on a partial run)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from embodiment.evaluate import EvaluationOptions, evaluate_joined
from embodiment.metrics import proportion
from embodiment.metrics.rsa_shared import SharedDraws
from embodiment.ratings import JoinedRatings
from grid.hidden_states import difference_fields, _hidden_state_metrics, _readout_rows, probe_differences
from grid.schema import BASE


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
        ["condition", "word", "dimension", "rating", "human"]
    ]
    return JoinedRatings(words, dims, human, model_m, [], long)


def aggregate(
    tables: dict[str, pd.DataFrame],
    *,
    rsa_recipe: str = "wu2026",
    subsets=("all", "sensory", "motor"),
    n_boot: int = 1000,
    seed: int = 0,
    train_norms: dict | None = None,
    progress=None,
    paired: bool = True,
    trained: dict | None = None,
) -> dict[str, pd.DataFrame]:
    """Metrics and transfer tables from the ratings, embeddings and choices tables.

    Args:
        tables: the run's tables (ratings, head_ratings, embeddings, choices, trials), any
            may be empty.
        rsa_recipe: the recipe of rating RSA and of the probe's RSA.
        subsets: dimension subsets of rating RSA.
        n_boot: bootstrap resamples for every CI (correlations and RSA).
        seed: seed of every resampling and of the probe's folds.
        train_norms: language -> the training concepts' norms (:class:`~embodiment.norms.Norms`),
            which the probe is fitted on; without them there is no probe.
        progress: called with a line of text as each part starts.
        paired: the paired-word rule across the models compared (base and trials of one
            model and language); see :class:`~embodiment.evaluate.EvaluationOptions`.
        trained: condition -> what it trained on (:func:`trained_on`); with it, transfer rows
            say whether their dimension, language and format were trained, and the metrics
            gain each group's mean delta with a paired bootstrap CI (``transfer_delta``).

    Returns:
        ``metrics`` and ``transfer`` frames, each with ``model`` and ``trial_id`` columns
        (``trial_id`` is ``base`` for the untrained model).
    """
    say = progress or (lambda _: None)
    ratings = tables.get("ratings", pd.DataFrame())
    trials = tables.get("trials", pd.DataFrame())
    cond_of = {**dict(zip(trials.get("trial_id", []), trials.get("condition", []))), BASE: BASE}
    stats = _Statistics(rsa_recipe, tuple(subsets), n_boot, seed, paired)
    joined_of = {}  # (model, language) -> the aligned ratings, built once for every use below
    # RSAs against the same human RDM share each draw's human side: their CIs are filled in as the context closes
    with SharedDraws() as shared:
        metrics, transfer = _rating_rows(ratings, cond_of, stats, trained, joined_of)
        metrics += _head_rows(tables.get("head_ratings", pd.DataFrame()), cond_of, stats)
        emb = tables.get("embeddings", pd.DataFrame())
        if len(emb) and len(ratings):
            say("aggregate: RSA of hidden states by layer and the frozen-feature probe")
            metrics += _hidden_rows(emb, ratings, cond_of, stats, train_norms, joined_of)
        choices = tables.get("choices", pd.DataFrame())
        if len(choices):
            metrics.append(_accuracy_rows(choices, cond_of, n_boot=n_boot, seed=seed))
        say("aggregate: RSA bootstrap draws")
    return _typed([shared.resolved(m) for m in metrics], transfer, trials)


@dataclass(frozen=True)
class _Statistics:
    """The statistics every part of the aggregate shares."""

    rsa_recipe: str
    subsets: tuple
    n_boot: int
    seed: int
    paired: bool

    def options(self, base: str | None, eval_set: str) -> EvaluationOptions:
        return EvaluationOptions(
            base=base,
            n_boot=self.n_boot,
            rsa_recipe=self.rsa_recipe,
            rsa_subsets=self.subsets,
            rsa_boot=self.n_boot,
            seed=self.seed,
            eval_set=eval_set,
            paired=self.paired,
        )


def _rating_rows(ratings, cond_of, stats: _Statistics, trained, joined_of) -> tuple[list, list]:
    """Metrics and transfer rows of the rating prompts, per model and language (``joined_of`` filled)."""
    metrics, transfer = [], []
    for (model, language), _ in ratings.groupby(["model", "language"], sort=False) if len(ratings) else []:
        joined = joined_of[(model, language)] = _joined(ratings, model, language)
        out = evaluate_joined(joined, stats.options(BASE if BASE in joined.model else None, f"{language}/rating"))
        m = out["metrics"].rename(columns={"condition": "trial_id"})
        metrics.append(m.assign(model=model, language=language, condition=m["trial_id"].map(cond_of)))
        if len(out["transfer"]):
            t = out["transfer"].rename(columns={"condition": "trial_id"})
            t = t.assign(model=model, language=language, condition=t["trial_id"].map(cond_of))
            if trained:
                t = _with_training_flags(t, trained)
                metrics.append(transfer_groups(joined, t, n_boot=stats.n_boot, seed=stats.seed, paired=stats.paired))
            transfer.append(t)
    return metrics, transfer


def _head_rows(heads, cond_of, stats: _Statistics) -> list:
    """A trial's ratings through its own head: the same metrics under head_<metric> (no
    base to compare with: the untrained model has no head)."""
    rows = []
    for (model, language), _ in heads.groupby(["model", "language"], sort=False) if len(heads) else []:
        out = evaluate_joined(_joined(heads, model, language), stats.options(None, f"{language}/head"))
        m = out["metrics"].rename(columns={"condition": "trial_id"})
        rows.append(_readout_rows(m, "head_", {"model": model, "language": language}, cond_of=cond_of))
    return rows


def _hidden_rows(emb, ratings, cond_of, stats: _Statistics, train_norms, joined_of) -> list:
    """RSA of hidden states by layer, the probe's rows, and each trial minus the probe."""
    predictions: dict = {}
    hidden = _hidden_state_metrics(
        emb,
        ratings,
        cond_of,
        rsa_recipe=stats.rsa_recipe,
        subsets=stats.subsets,
        n_boot=stats.n_boot,
        seed=stats.seed,
        train_norms=train_norms,
        predictions=predictions,
    )
    if not hidden:
        return []
    # the probe's cv_error rows are among them: what picks its layer
    differences = probe_differences(
        joined_of,
        predictions,
        pd.concat(hidden, ignore_index=True),
        cond_of,
        rsa_recipe=stats.rsa_recipe,
        n_boot=stats.n_boot,
        seed=stats.seed,
        paired=stats.paired,
    )
    return [*hidden, differences]


def _typed(metrics: list, transfer: list, trials: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The metrics and transfer frames, with integer columns nullable and each row's seed."""
    metrics_df = pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame()
    seed_of = dict(zip(trials["trial_id"], trials["seed"])) if {"trial_id", "seed"} <= set(trials.columns) else {}
    if len(metrics_df):
        metrics_df["layer"] = metrics_df["layer"].astype("Int64")
        for col in ("n", "n_dropped"):
            metrics_df[col] = metrics_df[col].astype("Int64")
        metrics_df["seed"] = metrics_df["trial_id"].map(seed_of).astype("Int64")
    transfer_df = pd.concat(transfer, ignore_index=True) if transfer else pd.DataFrame()
    if len(transfer_df):
        transfer_df["seed"] = transfer_df["trial_id"].map(seed_of).astype("Int64")
    return {"metrics": metrics_df, "transfer": transfer_df}


def trained_on(conditions, train_dimensions: dict[str, list[str]]) -> dict[str, dict]:
    """What each condition trained on: its format, languages and, per language, the
    dimensions (none for a format that trains on questions, not norms).

    Args:
        conditions: the job's conditions (``name``, ``format``, ``languages``, ``dimensions``).
        train_dimensions: language -> the dimensions of its training norms.
    """
    from embodiment import dimensions as dims
    from embodiment.formats import FORMATS

    out = {}
    for c in conditions:
        on_norms = FORMATS[c.format].trains_on == "norms"
        out[c.name] = {
            "format": c.format,
            "languages": list(c.languages),
            "dimensions": {
                lang: (dims.subset(train_dimensions[lang], c.dimensions) if on_norms else [])
                for lang in c.languages
                if lang in train_dimensions
            },
        }
    return out


def _with_training_flags(transfer: pd.DataFrame, trained: dict, eval_format: str = "rating") -> pd.DataFrame:
    """Transfer rows with ``dimension_trained`` (the dimension, or its equivalent in a
    trained language, was trained), ``language_trained`` and ``format_trained``."""
    from embodiment import dimensions as dims

    flags = []
    for r in transfer.itertuples():
        what = trained.get(r.condition)
        if what is None:
            flags.append((None, None, None))
            continue
        same = {lang: dims.equivalent(r.dimension, lang) or r.dimension for lang in what["dimensions"]}
        dim = any(same[lang] in names for lang, names in what["dimensions"].items())
        flags.append((dim, r.language in what["languages"], what["format"] == eval_format))
    frame = pd.DataFrame(
        flags, columns=["dimension_trained", "language_trained", "format_trained"], index=transfer.index
    )
    return pd.concat([transfer, frame.astype("boolean")], axis=1)


def group_label(dimension_trained, language_trained, format_trained) -> str:
    """A transfer group in words: trained or untrained dimensions, same or other language and format."""
    return (
        f"{'trained' if dimension_trained else 'untrained'} dimensions · "
        f"{'same' if language_trained else 'other'} language · {'same' if format_trained else 'other'} format"
    )


def transfer_groups(joined, transfer: pd.DataFrame, *, n_boot: int, seed: int, paired: bool = True) -> pd.DataFrame:
    """Each trial's mean Spearman delta against the base over each group of dimensions
    (trained / untrained; the language and format flags are one value per trial and
    language here), with a paired bootstrap CI: both models on the same resample of concepts."""
    from embodiment.evaluate import paired_ratings
    from embodiment.metrics import mean_spearman_of, paired_differences

    models = paired_ratings(joined.model) if paired else joined.model
    rows = []
    flagged = transfer.dropna(subset=["dimension_trained"])
    for (trial_id, group), part in flagged.groupby(["trial_id", "dimension_trained"], sort=False):
        cols = [joined.dimensions.index(d) for d in part["dimension"]]
        tuned, base = models[trial_id][:, cols], models[BASE][:, cols]
        keep = ~(np.isnan(tuned).any(axis=1) | np.isnan(base).any(axis=1) | np.isnan(joined.human[:, cols]).any(axis=1))
        t, b, h = tuned[keep], base[keep], joined.human[keep][:, cols]
        d = paired_differences(
            {"tuned": mean_spearman_of(t, h), "base": mean_spearman_of(b, h)},
            [("tuned", "base")],
            int(keep.sum()),
            n_boot=n_boot,
            seed=seed,
        )[("tuned", "base")]
        first = part.iloc[0]
        rows.append(
            {
                "trial_id": trial_id,
                "condition": first["condition"],
                "model": first["model"],
                "language": first["language"],
                "eval_set": first["eval_set"],
                "metric": "transfer_delta",
                "subset": group_label(group, first["language_trained"], first["format_trained"]),
                **difference_fields(d, int((~keep).sum())),
                "note": f"mean Spearman delta over {len(cols)} dimension(s): {', '.join(part['dimension'])}",
            }
        )
    return pd.DataFrame(rows)


def _accuracy_rows(choices: pd.DataFrame, cond_of: dict, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Colour-question accuracy per (model, trial) with a bootstrap CI over questions."""
    rows = []
    per_item = choices.drop_duplicates(["model", "trial_id", "index"])
    for (model, trial_id), g in per_item.groupby(["model", "trial_id"], sort=False):
        acc = proportion(g["is_correct"].to_numpy(bool), n_boot=n_boot, seed=seed)
        rows.append(
            {
                "trial_id": trial_id,
                "condition": cond_of.get(trial_id, trial_id),
                "model": model,
                "eval_set": "mcq",
                "metric": "accuracy",
                "subset": "all",
                "value": acc.value,
                "ci_low": acc.ci_low,
                "ci_high": acc.ci_high,
                "n": acc.n,
            }
        )
    return pd.DataFrame(rows)

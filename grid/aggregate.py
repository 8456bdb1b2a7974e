"""The aggregate stage: metrics, RSA (ratings and hidden states by layer), transfer
tables against the base model, MCQ accuracy and the best trial per objective -- all
computed from the stored tables, so it can rerun at any time (e.g. on a partial run)."""

from __future__ import annotations


import numpy as np
import pandas as pd

from embodiment.evaluate import EvaluationOptions, evaluate_joined
from embodiment.metrics import proportion, rsa
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
              n_boot: int = 1000, seed: int = 0, train_norms: dict | None = None, progress=None,
              paired: bool = True, trained: dict | None = None) -> dict[str, pd.DataFrame]:
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
    metrics, transfer = [], []
    ratings = tables.get("ratings", pd.DataFrame())
    trials = tables.get("trials", pd.DataFrame())
    cond_of = dict(zip(trials.get("trial_id", []), trials.get("condition", [])))
    cond_of[BASE] = BASE
    joined_of = {}  # (model, language) -> the aligned ratings, built once for every use below
    if len(ratings):
        for (model, language), _ in ratings.groupby(["model", "language"], sort=False):
            joined = joined_of[(model, language)] = _joined(ratings, model, language)
            options = EvaluationOptions(base=BASE if BASE in joined.model else None, n_boot=n_boot, rsa_recipe=rsa_recipe,
                                        rsa_subsets=subsets, rsa_boot=n_boot, seed=seed, eval_set=f"{language}/rating",
                                        paired=paired)
            out = evaluate_joined(joined, options)
            m = out["metrics"].rename(columns={"condition": "trial_id"})
            metrics.append(m.assign(model=model, language=language, condition=m["trial_id"].map(cond_of)))
            if len(out["transfer"]):
                t = out["transfer"].rename(columns={"condition": "trial_id"})
                t = t.assign(model=model, language=language, condition=t["trial_id"].map(cond_of))
                if trained:
                    t = _with_training_flags(t, trained)
                    metrics.append(transfer_groups(joined, t, n_boot=n_boot, seed=seed, paired=paired))
                transfer.append(t)
    heads = tables.get("head_ratings", pd.DataFrame())
    for (model, language), _ in (heads.groupby(["model", "language"], sort=False) if len(heads) else []):
        # a trial's ratings through its own head: the same metrics under head_<metric>
        # (no base to compare with: the untrained model has no head)
        options = EvaluationOptions(base=None, n_boot=n_boot, rsa_recipe=rsa_recipe, rsa_subsets=subsets,
                                    rsa_boot=n_boot, seed=seed, eval_set=f"{language}/head", paired=paired)
        m = evaluate_joined(_joined(heads, model, language), options)["metrics"].rename(columns={"condition": "trial_id"})
        metrics.append(_readout_rows(m, "head_", {"model": model, "language": language}, cond_of=cond_of))
    emb = tables.get("embeddings", pd.DataFrame())
    if len(emb) and len(ratings):
        say("aggregate: RSA of hidden states by layer and the frozen-feature probe")
        predictions: dict = {}
        hidden = _hidden_state_metrics(emb, ratings, cond_of, rsa_recipe=rsa_recipe, subsets=subsets, n_boot=n_boot,
                                       seed=seed, train_norms=train_norms, predictions=predictions)
        metrics += hidden
        if hidden:  # the probe's cv_error rows are among them: what picks its layer
            metrics.append(probe_differences(joined_of, predictions, pd.concat(hidden, ignore_index=True), cond_of,
                                             rsa_recipe=rsa_recipe, n_boot=n_boot, seed=seed, paired=paired))
    choices = tables.get("choices", pd.DataFrame())
    if len(choices):
        metrics.append(_accuracy_rows(choices, cond_of, n_boot=n_boot, seed=seed))
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
        out[c.name] = {"format": c.format, "languages": list(c.languages),
                       "dimensions": {lang: (dims.subset(train_dimensions[lang], c.dimensions) if on_norms else [])
                                      for lang in c.languages if lang in train_dimensions}}
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
    frame = pd.DataFrame(flags, columns=["dimension_trained", "language_trained", "format_trained"], index=transfer.index)
    return pd.concat([transfer, frame.astype("boolean")], axis=1)


def group_label(dimension_trained, language_trained, format_trained) -> str:
    """A transfer group in words: trained or untrained dimensions, same or other language and format."""
    return (f"{'trained' if dimension_trained else 'untrained'} dimensions · "
            f"{'same' if language_trained else 'other'} language · {'same' if format_trained else 'other'} format")


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
        d = paired_differences({"tuned": mean_spearman_of(t, h), "base": mean_spearman_of(b, h)},
                               [("tuned", "base")], int(keep.sum()), n_boot=n_boot, seed=seed)[("tuned", "base")]
        first = part.iloc[0]
        rows.append({"trial_id": trial_id, "condition": first["condition"], "model": first["model"],
                     "language": first["language"], "eval_set": first["eval_set"], "metric": "transfer_delta",
                     "subset": group_label(group, first["language_trained"], first["format_trained"]),
                     "value": d.value, "ci_low": d.ci_low, "ci_high": d.ci_high, "p": d.p, "alternative": "two-sided",
                     "n": d.n, "n_dropped": int((~keep).sum()),
                     "note": f"mean Spearman delta over {len(cols)} dimension(s): {', '.join(part['dimension'])}"})
    return pd.DataFrame(rows)


def _accuracy_rows(choices: pd.DataFrame, cond_of: dict, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Colour-question accuracy per (model, trial) with a bootstrap CI over questions."""
    rows = []
    per_item = choices.drop_duplicates(["model", "trial_id", "index"])
    for (model, trial_id), g in per_item.groupby(["model", "trial_id"], sort=False):
        acc = proportion(g["is_correct"].to_numpy(bool), n_boot=n_boot, seed=seed)
        rows.append({"trial_id": trial_id, "condition": cond_of.get(trial_id, trial_id), "model": model, "eval_set": "mcq",
                     "metric": "accuracy", "subset": "all", "value": acc.value, "ci_low": acc.ci_low,
                     "ci_high": acc.ci_high, "n": acc.n})
    return pd.DataFrame(rows)


def _split_of(emb: pd.DataFrame) -> pd.Series:
    """Each embedding row's split (a frame without the column holds held-out rows only)."""
    return emb["split"].fillna("test") if "split" in emb else pd.Series("test", index=emb.index)


def _readout_rows(metrics: pd.DataFrame, prefix: str, tag: dict, *, cond_of: dict | None = None,
                  method: str | None = None) -> pd.DataFrame:
    """A read-out's metrics (a trial's regression head, a ridge probe): the ratings
    evaluation's rows, each metric named ``<prefix><metric>`` and tagged; ``method`` (how
    the read-out was fitted) fills ``recipe`` where the metric has none of its own."""
    m = metrics.drop(columns="condition", errors="ignore").assign(**tag)
    if cond_of is not None:
        m["condition"] = m["trial_id"].map(cond_of)
    if method is not None:
        m["recipe"] = m["recipe"].astype(object).where(m["recipe"].notna(), method)
    return m.assign(metric=prefix + m["metric"])


def _hidden_state_metrics(emb: pd.DataFrame, ratings: pd.DataFrame, cond_of: dict, *, rsa_recipe: str, subsets,
                          n_boot: int, seed: int, train_norms: dict | None,
                          predictions: dict | None = None) -> list[pd.DataFrame]:
    """Per (model, trial, language, layer): RSA of the held-out concepts' hidden states
    (``rsa_hidden``), and where training concepts were embedded, the ridge probe fitted on
    them and scored on the held-out ones as any ratings are (``probe_spearman``,
    ``probe_pearson`` per dimension, ``probe_rsa`` per subset, ``probe_wordwise_similarity``).
    ``predictions``, when given, receives each probe's held-out predictions under
    (model, trial_id, language, layer): (concepts, dimensions, (n, d) array)."""
    from embodiment.probe import evaluate_probe

    split = _split_of(emb)
    human = ratings.drop_duplicates(["language", "concept", "dimension"])
    # each language's held-out human ratings as a concept x dimension table, once (not per
    # model, trial and layer), dimensions in the ratings' order
    wide = {lang: part.pivot(index="concept", columns="dimension", values="human")[list(dict.fromkeys(part["dimension"]))]
            for lang, part in human.groupby("language", sort=False)}
    out = []
    for (model, trial_id, language, layer), g in emb.groupby(["model", "trial_id", "language", "layer"], sort=False):
        if language not in wide:
            continue
        h = wide[language]
        test = g[(split[g.index] == "test") & g["concept"].isin(h.index)]
        if len(test) < 3:
            continue
        vectors = np.stack(test["vector"].map(np.asarray).to_list())
        target = h.loc[test["concept"]].to_numpy()
        tag = {"trial_id": trial_id, "condition": cond_of.get(trial_id, trial_id), "model": model, "language": language,
               "layer": int(layer)}
        res = rsa(vectors, target, {"standardise": "none", "rdm": "cosine", "compare": "spearman", "name": "hidden-vs-human"},
                  n_boot=n_boot, seed=seed)
        out.append(pd.DataFrame([{**tag, "eval_set": f"{language}/embeddings", "metric": "rsa_hidden", "subset": "all",
                                  "recipe": res.recipe.name, "standardise": "none", "rdm_method": "cosine",
                                  "compare_method": "spearman", "value": res.value, "ci_low": res.ci_low,
                                  "ci_high": res.ci_high, "n": res.n_concepts, "n_dropped": res.n_dropped}]))
        train = g[split[g.index] == "train"]
        norms = (train_norms or {}).get(language)
        if norms is None or len(train) < 10:
            continue
        known = {w: i for i, w in enumerate(norms.words)}
        train = train[train["concept"].isin(known)]
        columns = [norms.dimensions.index(d) for d in h.columns]
        train_target = norms.means[[known[c] for c in train["concept"]]][:, columns]
        fitted = evaluate_probe(np.stack(train["vector"].map(np.asarray).to_list()), train_target, vectors, target,
                                list(h.columns), recipe=rsa_recipe, subsets=subsets, n_boot=n_boot, seed=seed,
                                eval_set=f"{language}/probe")
        if predictions is not None:
            predictions[(model, trial_id, language, int(layer))] = (list(test["concept"]), list(h.columns), fitted.predictions)
        method = f"ridge alpha={fitted.probe.alpha:g}, train n={len(train)}"
        out.append(_readout_rows(fitted.metrics, "probe_", tag, method=method))
        # the layer a headline quotes is chosen by this, on training concepts only
        out.append(pd.DataFrame([{**tag, "eval_set": f"{language}/probe", "metric": "probe_cv_error", "subset": "all",
                                  "recipe": method, "value": fitted.probe.cv_error[fitted.probe.alpha],
                                  "n": len(train), "n_dropped": 0}]))
    return out


#: trial minus probe, per measure: (metric name, what the statistic is)
MINUS_PROBE = {"minus_probe_mean_spearman": "mean Spearman", "minus_probe_rsa": "rating RSA"}


def probe_differences(joined_of: dict, predictions: dict, metrics: pd.DataFrame, cond_of: dict, *,
                      rsa_recipe: str = "wu2026", n_boot: int = 1000, seed: int = 0, paired: bool = True) -> pd.DataFrame:
    """Is a fine-tuned model's prompted rating beyond the linear read-out of the frozen base?

    For each trial, its ratings minus the base model's ridge probe (at the layer of least
    cross-validated error, :func:`probe_layer`) on the same held-out concepts, resampled
    together (:func:`embodiment.metrics.paired_differences`): mean Spearman over dimensions
    and rating RSA, each with its 95 % CI and two-sided bootstrap p.

    Args:
        joined_of: (model, language) -> the aligned ratings (base and trials).
        predictions: the probes' held-out predictions (:func:`_hidden_state_metrics`).
        metrics: rows holding ``probe_cv_error`` (what picks the probe's layer).
        cond_of: trial -> condition.

    Returns:
        metrics rows ``minus_probe_mean_spearman`` and ``minus_probe_rsa`` (layer: the
        probe's), empty without a probe.
    """
    from embodiment.metrics import ResampledRSA, get_recipe, mean_spearman_of, paired_differences

    recipe = get_recipe(rsa_recipe)
    rows = []
    for (model, language), joined in joined_of.items():
        layer = probe_layer(metrics[metrics["model"] == model] if "model" in metrics else metrics, language)
        if layer is None or (model, BASE, language, layer) not in predictions:
            continue
        concepts, dims, pred = predictions[(model, BASE, language, layer)]
        where = {c: i for i, c in enumerate(concepts)}
        order = [joined.dimensions.index(d) for d in dims]
        rows_of = [i for i, w in enumerate(joined.words) if w in where]
        human = joined.human[rows_of][:, order]
        probe = pred[[where[joined.words[i]] for i in rows_of]]
        for trial_id, values in joined.model.items():
            if trial_id == BASE:
                continue
            tuned = values[rows_of][:, order]
            keep = ~(np.isnan(tuned).any(axis=1) | np.isnan(human).any(axis=1)) if paired else ~np.isnan(human).any(axis=1)
            t, p, hm = tuned[keep], probe[keep], human[keep]
            stats_of = {
                "minus_probe_mean_spearman": {"tuned": mean_spearman_of(t, hm), "probe": mean_spearman_of(p, hm)},
                "minus_probe_rsa": {"tuned": ResampledRSA.of(t, hm, recipe), "probe": ResampledRSA.of(p, hm, recipe)},
            }
            for metric, statistics in stats_of.items():
                d = paired_differences(statistics, [("tuned", "probe")], int(keep.sum()), n_boot=n_boot,
                                       seed=seed)[("tuned", "probe")]
                rows.append({"trial_id": trial_id, "condition": cond_of.get(trial_id, trial_id), "model": model,
                             "language": language, "eval_set": f"{language}/rating", "metric": metric, "subset": "all",
                             "layer": layer, "recipe": rsa_recipe if metric.endswith("rsa") else None,
                             "value": d.value, "ci_low": d.ci_low, "ci_high": d.ci_high, "p": d.p,
                             "alternative": "two-sided", "n": d.n, "n_dropped": int((~keep).sum()),
                             "note": f"paired bootstrap: the trial's prompted ratings minus the base probe (layer {layer})"})
    return pd.DataFrame(rows)


def probe_layer(metrics: pd.DataFrame, language: str, trial_id: str = BASE) -> int | None:
    """The probe layer to quote: the one with the lowest cross-validated error on the
    training concepts (``probe_cv_error``), never the best held-out score. None without
    a probe."""
    cv = metrics[(metrics["metric"] == "probe_cv_error") & (metrics["language"] == language)
                 & (metrics["trial_id"] == trial_id)] if len(metrics) else metrics
    if cv.empty or cv["value"].isna().all():
        return None
    return int(cv.loc[cv["value"].idxmin(), "layer"])

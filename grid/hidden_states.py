"""Hidden states in the aggregate: RSA of each layer's held-out states, the ridge probe
fitted on the training concepts' states (its layer chosen by cross-validated error), and
each fine-tuned model minus that probe on the same held-out concepts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from embodiment.metrics import rsa
from grid.schema import BASE


def _split_of(emb: pd.DataFrame) -> pd.Series:
    """Each embedding row's split (a frame without the column holds held-out rows only)."""
    return emb["split"].fillna("test") if "split" in emb else pd.Series("test", index=emb.index)


def _readout_rows(
    metrics: pd.DataFrame, prefix: str, tag: dict, *, cond_of: dict | None = None, method: str | None = None
) -> pd.DataFrame:
    """A read-out's metrics (a trial's regression head, a ridge probe): the ratings
    evaluation's rows, each metric named ``<prefix><metric>`` and tagged; ``method`` (how
    the read-out was fitted) fills ``recipe`` where the metric has none of its own."""
    m = metrics.drop(columns="condition", errors="ignore").assign(**tag)
    if cond_of is not None:
        m["condition"] = m["trial_id"].map(cond_of)
    if method is not None:
        m["recipe"] = m["recipe"].astype(object).where(m["recipe"].notna(), method)
    return m.assign(metric=prefix + m["metric"])


def _hidden_state_metrics(
    emb: pd.DataFrame,
    ratings: pd.DataFrame,
    cond_of: dict,
    *,
    rsa_recipe: str,
    subsets,
    n_boot: int,
    seed: int,
    train_norms: dict | None,
    predictions: dict | None = None,
) -> list[pd.DataFrame]:
    """Per (model, trial, language, layer): RSA of the held-out concepts' hidden states
    (``rsa_hidden``), and where training concepts were embedded, the ridge probe fitted on
    them and scored on the held-out ones as any ratings are (``probe_spearman``,
    ``probe_pearson`` per dimension, ``probe_rsa`` per subset, ``probe_wordwise_similarity``).
    ``predictions``, when given, receives each probe's held-out predictions under
    (model, trial_id, language, layer): (concepts, dimensions, (n, d) array)."""
    source = EmbeddingLayers.of(emb)
    human = ratings.drop_duplicates(["language", "concept", "dimension"])
    # each language's held-out human ratings as a concept x dimension table, once (not per
    # model, trial and layer), dimensions in the ratings' order
    wide = {
        lang: part.pivot(index="concept", columns="dimension", values="human")[list(dict.fromkeys(part["dimension"]))]
        for lang, part in human.groupby("language", sort=False)
    }
    out = []
    for layer_id in source.layers():  # one layer's hidden states in memory at a time
        frame = source.layer(layer_id)
        pa.default_memory_pool().release_unused()  # Arrow's read buffers: back to the system, not kept per layer
        split = _split_of(frame)
        for (model, trial_id, language, layer), g in frame.groupby(
            ["model", "trial_id", "language", "layer"], sort=False
        ):
            out += _layer_rows(
                g,
                split,
                wide,
                train_norms,
                cond_of,
                (model, trial_id, language, layer),
                rsa_recipe=rsa_recipe,
                subsets=subsets,
                n_boot=n_boot,
                seed=seed,
                predictions=predictions,
            )
    return out


def _layer_rows(g, split, wide, train_norms, cond_of, key, *, rsa_recipe, subsets, n_boot, seed, predictions) -> list:
    """The RSA row and the probe's rows of one (model, trial, language, layer)."""
    model, trial_id, language, layer = key
    if language not in wide:
        return []
    h = wide[language]
    test = g[(split[g.index] == "test") & g["concept"].isin(h.index)]
    if len(test) < 3:
        return []
    vectors = np.stack(test["vector"].map(np.asarray).to_list())
    target = h.loc[test["concept"]].to_numpy()
    tag = {
        "trial_id": trial_id,
        "condition": cond_of.get(trial_id, trial_id),
        "model": model,
        "language": language,
        "layer": int(layer),
    }
    out = [_hidden_rsa_row(vectors, target, tag, n_boot=n_boot, seed=seed)]
    train = g[split[g.index] == "train"]
    norms = (train_norms or {}).get(language)
    if norms is not None and len(train) >= 10:
        out += _probe_rows(train, norms, test, vectors, target, h, tag, rsa_recipe, subsets, n_boot, seed, predictions)
    return out


class EmbeddingLayers:
    """A run's hidden states, one layer at a time: from a frame already in memory, or read
    from the results store layer by layer (only that layer's rows of each file), so the
    aggregate never holds every layer of every model at once.

    Args:
        frame: the embeddings table, in memory.
        store: a :class:`~grid.results.ResultsStore` whose ``embeddings`` table is read.
        where: with ``store``, only rows whose columns hold these values
            (``{"trial_id": "base", "model": m}``).
    """

    def __init__(self, frame: pd.DataFrame | None = None, store=None, where: dict | None = None):
        self.frame, self.store = frame, store
        self.where = [(column, "==", value) for column, value in (where or {}).items()]
        self._layers: list[int] | None = None  # listed once: the store's layer column is read one time

    @classmethod
    def of(cls, source) -> "EmbeddingLayers":
        """``source`` as it is if already one, else a frame wrapped."""
        return source if isinstance(source, EmbeddingLayers) else cls(frame=source)

    def layers(self) -> list[int]:
        """The layers present, in order."""
        if self._layers is not None:
            return self._layers
        if self.store is None:
            values = self.frame["layer"] if len(self.frame) else []
        else:
            stored = self.store.read("embeddings", columns=["layer"], filters=self.where or None)
            values = stored["layer"] if len(stored) else []
        self._layers = sorted({int(v) for v in values})
        return self._layers

    def layer(self, layer: int) -> pd.DataFrame:
        """Every row of one layer."""
        if self.store is None:
            return self.frame[self.frame["layer"] == layer]
        return self.store.read("embeddings", filters=[("layer", "==", layer), *self.where])

    def only(self, layers) -> "EmbeddingLayers":
        """The same rows, of ``layers`` only."""
        keep = sorted(set(layers) & set(self.layers()))
        if self.store is None:
            return EmbeddingLayers(frame=self.frame[self.frame["layer"].isin(keep)])
        out = EmbeddingLayers(store=self.store)
        out.where, out._layers = self.where, keep
        return out

    def __len__(self) -> int:
        return len(self.layers())


def _hidden_rsa_row(vectors: np.ndarray, target: np.ndarray, tag: dict, *, n_boot: int, seed: int) -> pd.DataFrame:
    """RSA of held-out hidden states (cosine RDM) against the human ratings, as one metrics row."""
    res = rsa(
        vectors,
        target,
        {"standardise": "none", "rdm": "cosine", "compare": "spearman", "name": "hidden-vs-human"},
        n_boot=n_boot,
        seed=seed,
    )
    row = {
        **tag,
        "eval_set": f"{tag['language']}/embeddings",
        "metric": "rsa_hidden",
        "subset": "all",
        "recipe": res.recipe.name,
        "standardise": "none",
        "rdm_method": "cosine",
        "compare_method": "spearman",
        "value": res.value,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "n": res.n_concepts,
        "n_dropped": res.n_dropped,
    }
    return pd.DataFrame([row])


def _probe_rows(train, norms, test, vectors, target, h, tag, rsa_recipe, subsets, n_boot, seed, predictions) -> list:
    """The ridge probe of one (model, trial, language, layer): fitted on the training
    concepts' hidden states, scored on the held-out ones; its metrics and its cv error."""
    from embodiment.probe import evaluate_probe

    language, model, trial_id, layer = tag["language"], tag["model"], tag["trial_id"], tag["layer"]
    known = {w: i for i, w in enumerate(norms.words)}
    train = train[train["concept"].isin(known)]
    columns = [norms.dimensions.index(d) for d in h.columns]
    train_target = norms.means[[known[c] for c in train["concept"]]][:, columns]
    fitted = evaluate_probe(
        np.stack(train["vector"].map(np.asarray).to_list()),
        train_target,
        vectors,
        target,
        list(h.columns),
        recipe=rsa_recipe,
        subsets=subsets,
        n_boot=n_boot,
        seed=seed,
        eval_set=f"{language}/probe",
    )
    if predictions is not None:
        predictions[(model, trial_id, language, int(layer))] = (
            list(test["concept"]),
            list(h.columns),
            fitted.predictions,
        )
    method = f"ridge alpha={fitted.probe.alpha:g}, train n={len(train)}"
    out = [_readout_rows(fitted.metrics, "probe_", tag, method=method)]
    # the layer a headline quotes is chosen by this, on training concepts only
    out.append(
        pd.DataFrame(
            [
                {
                    **tag,
                    "eval_set": f"{language}/probe",
                    "metric": "probe_cv_error",
                    "subset": "all",
                    "recipe": method,
                    "value": fitted.probe.cv_error[fitted.probe.alpha],
                    "n": len(train),
                    "n_dropped": 0,
                }
            ]
        )
    )
    return out


def difference_fields(d, dropped: int) -> dict:
    """A paired bootstrap difference's columns of a metrics row (two-sided p)."""
    return {
        "value": d.value,
        "ci_low": d.ci_low,
        "ci_high": d.ci_high,
        "p": d.p,
        "alternative": "two-sided",
        "n": d.n,
        "n_dropped": dropped,
    }


#: trial minus probe, per measure: (metric name, what the statistic is)
MINUS_PROBE = {"minus_probe_mean_spearman": "mean Spearman", "minus_probe_rsa": "rating RSA"}


def probe_differences(
    joined_of: dict,
    predictions: dict,
    metrics: pd.DataFrame,
    cond_of: dict,
    *,
    rsa_recipe: str = "wu2026",
    n_boot: int = 1000,
    seed: int = 0,
    paired: bool = True,
) -> pd.DataFrame:
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
            keep = (
                ~(np.isnan(tuned).any(axis=1) | np.isnan(human).any(axis=1)) if paired else ~np.isnan(human).any(axis=1)
            )
            t, p, hm = tuned[keep], probe[keep], human[keep]
            stats_of = {
                "minus_probe_mean_spearman": {"tuned": mean_spearman_of(t, hm), "probe": mean_spearman_of(p, hm)},
                "minus_probe_rsa": {"tuned": ResampledRSA.of(t, hm, recipe), "probe": ResampledRSA.of(p, hm, recipe)},
            }
            for metric, statistics in stats_of.items():
                d = paired_differences(statistics, [("tuned", "probe")], int(keep.sum()), n_boot=n_boot, seed=seed)[
                    ("tuned", "probe")
                ]
                rows.append(
                    {
                        "trial_id": trial_id,
                        "condition": cond_of.get(trial_id, trial_id),
                        "model": model,
                        "language": language,
                        "eval_set": f"{language}/rating",
                        "metric": metric,
                        "subset": "all",
                        "layer": layer,
                        "recipe": rsa_recipe if metric.endswith("rsa") else None,
                        **difference_fields(d, int((~keep).sum())),
                        "note": f"paired bootstrap: the trial's prompted ratings minus the base probe (layer {layer})",
                    }
                )
    return pd.DataFrame(rows)


def probe_layer(metrics: pd.DataFrame, language: str, trial_id: str = BASE) -> int | None:
    """The probe layer to quote: the one with the lowest cross-validated error on the
    training concepts (``probe_cv_error``), never the best held-out score. None without
    a probe."""
    cv = (
        metrics[
            (metrics["metric"] == "probe_cv_error")
            & (metrics["language"] == language)
            & (metrics["trial_id"] == trial_id)
        ]
        if len(metrics)
        else metrics
    )
    if cv.empty or cv["value"].isna().all():
        return None
    return int(cv.loc[cv["value"].idxmin(), "layer"])

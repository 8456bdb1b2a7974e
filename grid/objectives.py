"""Choosing among trials and comparing them: the best configuration per objective (by its
seeds' mean validation score), the objective table, paired differences between objectives,
and each seed's figures. Reads the tables the aggregate stage wrote."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from grid.aggregate import _joined
from grid.schema import BASE


def chosen_on(trials: pd.DataFrame) -> str:
    """Which concepts the trials' scores (and so every choice among trials) came from, as
    the trials table records it: ``validation``, ``held-out``, or both where they differ."""
    on = sorted(trials["eval_on"].dropna().unique().tolist()) if "eval_on" in trials else []
    return " and ".join(on) if on else "unrecorded"


def _configuration(config: str) -> str:
    """A trial's configuration without its training seed: what a job's seeds repeat."""
    values = json.loads(config) if isinstance(config, str) else {}
    values.pop("seed", None)
    return json.dumps(values, sort_keys=True)


def best_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The best trial per learning objective (format): the configuration with the highest
    mean eval_score over its training seeds (validation concepts), represented by its
    lowest seed's trial; ``mean_eval_score`` and ``n_seeds`` say what was averaged."""
    if trials.empty or "eval_score" not in trials:
        return trials
    done = trials.dropna(subset=["eval_score"])
    if done.empty:
        return done
    # a trial without a recorded configuration is its own group
    config = done["config"] if "config" in done else pd.Series(None, index=done.index, dtype=object)
    key = [_configuration(c) if isinstance(c, str) else f"trial {t}" for c, t in zip(config, done["trial_id"])]
    done = done.assign(_group=done["format"].astype(str) + "|" + key)
    grouped = done.groupby("_group")
    done = done.assign(
        mean_eval_score=grouped["eval_score"].transform("mean"), n_seeds=grouped["trial_id"].transform("size")
    )
    best = done.loc[done.groupby("format")["mean_eval_score"].idxmax(), "_group"]
    order = ["seed", "trial_id"] if "seed" in done else ["trial_id"]
    chosen = done[done["_group"].isin(set(best))].sort_values(order).drop_duplicates("_group")
    return chosen.drop(columns="_group").sort_values("format").reset_index(drop=True)


def seed_table(metrics: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Each best configuration run with several training seeds: every seed's held-out mean
    Spearman and rating RSA (all dimensions, first language), then their mean and the
    spread (standard deviation) across seeds, beside which the bootstrap CIs are read."""
    if metrics.empty or trials.empty or "seed" not in trials or "config" not in trials:
        return pd.DataFrame()
    best = best_trials(trials)
    rows = []
    for b in best[best["n_seeds"] > 1].itertuples():
        same = trials[
            (trials["format"] == b.format)
            & (trials["config"].fillna("{}").map(_configuration) == _configuration(b.config))
        ]
        for t in same.sort_values("seed").itertuples():
            m = metrics[metrics["trial_id"] == t.trial_id]
            language = m["language"].dropna().iloc[0] if m["language"].notna().any() else None
            m = m[(m["language"] == language) & (m["eval_set"] == f"{language}/rating")]
            value = {
                name: m[(m["metric"] == metric) & (m["subset"].fillna("all") == "all")]["value"]
                for name, metric in (("mean Spearman", "mean_spearman"), ("rating RSA", "rsa"))
            }
            rows.append(
                {
                    "objective": b.format,
                    "seed": t.seed,
                    "trial_id": t.trial_id,
                    "validation": t.eval_score,
                    **{k: float(v.iloc[0]) if len(v) else np.nan for k, v in value.items()},
                }
            )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    summary = []
    for objective, part in out.groupby("objective", sort=False):
        summary.append(part)
        numbers = part[["validation", "mean Spearman", "rating RSA"]]
        summary.append(
            pd.DataFrame(
                [
                    {"objective": objective, "seed": "mean", **numbers.mean().to_dict()},
                    {"objective": objective, "seed": "spread (SD)", **numbers.std(ddof=1).to_dict()},
                ]
            )
        )
    return pd.concat(summary, ignore_index=True)


#: What the objective table shows per model (base and each objective's best trial):
#: label -> (metric, eval_set suffix); layered metrics get one column per layer.
OBJECTIVE_MEASURES = {
    "mean Spearman": ("mean_spearman", "/rating"),
    "rating RSA": ("rsa", "/rating"),
    "hidden RSA": ("rsa_hidden", "/embeddings"),
    "probe RSA": ("probe_rsa", "/probe"),
    "colour accuracy": ("accuracy", "mcq"),
    # an objective that trains a head (regression) also rates through it
    "head mean Spearman": ("head_mean_spearman", "/head"),
    "head RSA": ("head_rsa", "/head"),
}


def several_objectives(trials: pd.DataFrame) -> bool:
    """Whether a run searched more than one learning objective: what the objective table,
    the paired differences and the objectives figure are for."""
    return "format" in trials and trials["format"].nunique() > 1


def objective_table(metrics: pd.DataFrame, trials: pd.DataFrame, language: str | None = None) -> pd.DataFrame:
    """The answer to "which learning objective moves the model closest to humans?".

    One row per measure and model: the base and each objective's best trial (chosen by
    its validation score, never by held-out results), every value on held-out concepts
    (colour questions for accuracy) with its 95 % bootstrap CI, from the metrics table.

    Args:
        metrics: the run's metrics table.
        trials: the run's trials table (``format``, ``eval_score``, ``config``).
        language: the norms' language (default: the first with ratings).

    Returns:
        Long frame: objective, trial_id, measure, layer, value, ci_low, ci_high, n.
    """
    if metrics.empty:
        return pd.DataFrame()
    best = best_trials(trials) if len(trials) else pd.DataFrame(columns=["trial_id", "format"])
    who = {BASE: BASE, **dict(zip(best["trial_id"], best["format"]))}
    rated = metrics[metrics["metric"] == "mean_spearman"]
    language = language or (rated["language"].iloc[0] if len(rated) else None)
    rows = []
    for label, (metric, where) in OBJECTIVE_MEASURES.items():
        part = metrics[
            (metrics["metric"] == metric)
            & metrics["trial_id"].isin(list(who))
            & (metrics["subset"].fillna("all") == "all")
        ]
        part = part[part["eval_set"] == (where if not where.startswith("/") else f"{language}{where}")]
        for r in part.itertuples():
            rows.append(
                {
                    "objective": who[r.trial_id],
                    "trial_id": r.trial_id,
                    "measure": label,
                    "layer": r.layer,
                    "value": r.value,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "n": r.n,
                }
            )
    # base first, then the objectives in the order the job lists them (their trials' order)
    order = {name: i for i, name in enumerate(dict.fromkeys([BASE, *trials.get("format", [])]))}
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["layer"] = out["layer"].astype("Int64")
    return out.sort_values(
        ["objective", "measure", "layer"],
        key=lambda c: (
            c.map(order)
            if c.name == "objective"
            else c.map(list(OBJECTIVE_MEASURES).index)
            if c.name == "measure"
            else c
        ),
    ).reset_index(drop=True)


def objective_text(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`objective_table` as one row per model and one column per measure (and
    layer), each cell ``value [low, high]``: what the run summary and the report show."""
    if table.empty:
        return table

    def cell(r) -> str:
        if pd.isna(r.value):
            return ""
        ci = f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if pd.notna(r.ci_low) and pd.notna(r.ci_high) else ""
        return f"{r.value:.3f}{ci}"

    named = table.assign(
        column=[m if pd.isna(layer) else f"{m} L{layer}" for m, layer in zip(table["measure"], table["layer"])],
        cell=[cell(r) for r in table.itertuples()],
    )
    wide = named.pivot(index=["objective", "trial_id"], columns="column", values="cell")
    wide = wide[list(dict.fromkeys(named["column"]))]
    objectives = list(dict.fromkeys(named["objective"]))
    return wide.reindex(sorted(wide.index, key=lambda i: objectives.index(i[0]))).fillna("")


def objective_differences(
    tables: dict[str, pd.DataFrame],
    *,
    rsa_recipe: str = "wu2026",
    n_boot: int = 1000,
    seed: int = 0,
    language: str | None = None,
) -> pd.DataFrame:
    """Are the objectives' differences beyond chance? Paired bootstrap of each difference.

    For the base and each objective's best trial (:func:`best_trials`): every objective
    against the base, and every pair of objectives, on the same held-out concepts (the
    paired-word rule over all of them) or the same colour questions, resampled together
    (:func:`embodiment.metrics.paired_differences`).

    Args:
        tables: the run's ``ratings``, ``trials`` and (optionally) ``choices`` tables.
        rsa_recipe: the recipe of rating RSA.
        n_boot: bootstrap resamples.
        seed: seed of the resampling.
        language: the norms' language (default: the first in the ratings).

    Returns:
        One row per measure and pair: measure, a, b (objectives; ``a - b``), a_trial,
        b_trial, value, ci_low, ci_high, p, n.
    """
    from embodiment.metrics import ResampledRSA, get_recipe, mean_spearman_of, paired_differences

    ratings, trials = tables.get("ratings", pd.DataFrame()), tables.get("trials", pd.DataFrame())
    if ratings.empty or trials.empty or "eval_score" not in trials:
        return pd.DataFrame()
    best = best_trials(trials)
    order = list(dict.fromkeys(trials["format"]))
    best = best.set_index("format").loc[[f for f in order if f in set(best["format"])]]
    names = {BASE: BASE, **dict(zip(best["trial_id"], best.index))}
    pairs = [(o, BASE) for o in best.index] + [(a, b) for i, a in enumerate(best.index) for b in best.index[i + 1 :]]
    language = language or ratings["language"].iloc[0]
    recipe = get_recipe(rsa_recipe)
    rows = []
    for model, part in ratings[ratings["trial_id"].isin(list(names)) & (ratings["language"] == language)].groupby(
        "model"
    ):
        joined = _joined(part, model, language)
        if set(joined.model) != set(names):
            continue
        keep = ~np.isnan(joined.human).any(axis=1)
        for values in joined.model.values():
            keep &= ~np.isnan(values).any(axis=1)
        human = joined.human[keep]
        mats = {names[t]: v[keep] for t, v in joined.model.items()}

        # each model's RDMs built once, not once per draw
        statistics = {
            "mean Spearman": {o: mean_spearman_of(m, human) for o, m in mats.items()},
            "rating RSA": {o: ResampledRSA.of(m, human, recipe) for o, m in mats.items()},
        }
        for measure, stats_of in statistics.items():
            diffs = paired_differences(stats_of, pairs, int(keep.sum()), n_boot=n_boot, seed=seed)
            rows += [_difference_row(measure, pair, names, d) for pair, d in diffs.items()]
    choices = tables.get("choices", pd.DataFrame())
    if len(choices):
        right = (
            choices.drop_duplicates(["trial_id", "index"])
            .pivot(index="index", columns="trial_id", values="is_correct")
            .reindex(columns=list(names))
        )
        answered = [c for c in right.columns if right[c].notna().any()]
        right = right[answered].dropna().astype(float)
        have = {names[t] for t in answered}
        colour_pairs = [p for p in pairs if set(p) <= have]
        if colour_pairs and len(right):
            stats_of = {
                names[t]: (lambda col: lambda idx: float(col[idx].mean()))(right[t].to_numpy()) for t in answered
            }
            diffs = paired_differences(stats_of, colour_pairs, len(right), n_boot=n_boot, seed=seed)
            rows += [_difference_row("colour accuracy", pair, names, d) for pair, d in diffs.items()]
    return pd.DataFrame(rows)


def differences_text(diffs: pd.DataFrame) -> pd.DataFrame:
    """:func:`objective_differences` as text: one row per pair, one column per measure,
    each cell ``+0.012 [-0.01, 0.03]`` and a star where the interval excludes zero."""
    if diffs.empty:
        return diffs
    cell = [
        f"{r.value:+.3f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]{' *' if r.ci_low > 0 or r.ci_high < 0 else ''}"
        for r in diffs.itertuples()
    ]
    wide = diffs.assign(pair=diffs["a"] + " - " + diffs["b"], cell=cell).pivot(
        index="pair", columns="measure", values="cell"
    )
    return wide.reindex(
        index=list(dict.fromkeys(diffs["a"] + " - " + diffs["b"])), columns=list(dict.fromkeys(diffs["measure"]))
    ).fillna("")


def job_differences(tables: dict[str, pd.DataFrame], job: dict | None) -> pd.DataFrame:
    """:func:`objective_differences` with the run's own evaluation choices (its job's
    ``evaluation.rsa_recipe`` and ``n_boot``, its ``seed``), for a run that searched
    more than one objective; empty otherwise."""
    if not several_objectives(tables.get("trials", pd.DataFrame())):
        return pd.DataFrame()
    job = job or {}
    ev = job.get("evaluation") or {}
    return objective_differences(
        tables,
        rsa_recipe=ev.get("rsa_recipe", "wu2026"),
        n_boot=int(ev.get("n_boot", 1000)),
        seed=int(job.get("seed", 0)),
    )


def _difference_row(measure: str, pair: tuple[str, str], names: dict, d) -> dict:
    trial_of = {objective: trial for trial, objective in names.items()}
    return {
        "measure": measure,
        "a": pair[0],
        "b": pair[1],
        "a_trial": trial_of[pair[0]],
        "b_trial": trial_of[pair[1]],
        "value": d.value,
        "ci_low": d.ci_low,
        "ci_high": d.ci_high,
        "p": d.p,
        "n": d.n,
    }

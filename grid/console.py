"""Everything a run prints at its end: the summary tables, the headline sentence, the paired
differences, the seeds' spread and where the tables are (what ``egrid run``, ``resume`` and
``aggregate`` print; the report shows the same numbers as figures)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from embodiment.evaluate import format_p
from grid.location import RunLocation


def ci_text(row) -> str:
    """``value [low, high]`` to two decimals (the value alone without a CI)."""
    if pd.notna(row.get("ci_low")) and pd.notna(row.get("ci_high")):
        return f"{row['value']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    return f"{row['value']:.2f}"


def headline(metrics: pd.DataFrame, transfer: pd.DataFrame, trials: pd.DataFrame) -> str | None:
    """One quotable sentence: base, the best fine-tuned trial and the frozen probe side by side.

    The best trial is the one with the highest ``eval_score`` (validation concepts: a job
    with more than one trial must set some aside); RSA is over all dimensions of the first
    language, with 95 % bootstrap CIs over held-out concepts.
    """
    from grid.hidden_states import probe_layer
    from grid.objectives import best_trials

    if metrics is None or metrics.empty or trials is None or trials.empty or "eval_score" not in trials:
        return None
    best = best_trials(trials)
    best = best[best["format"] == "rating"] if (best["format"] == "rating").any() else best
    if best.empty:
        return None
    trial = best.sort_values("eval_score").iloc[-1]
    rsa_rows = metrics[(metrics["metric"] == "rsa") & (metrics["subset"] == "all")]
    if rsa_rows.empty:
        return None
    language = rsa_rows["language"].iloc[0]
    rsa_rows = rsa_rows[rsa_rows["language"] == language].set_index("trial_id")
    if "base" not in rsa_rows.index or trial["trial_id"] not in rsa_rows.index:
        return None
    base, tuned = rsa_rows.loc["base"], rsa_rows.loc[trial["trial_id"]]
    text = (
        f"On {int(tuned['n'])} held-out concepts ({language}), fine-tuning on {trial['condition']} (trial "
        f"{trial['trial_id']}) moved the model's rating RSA with the human norms from {ci_text(base)} (base) to {ci_text(tuned)}"
    )
    layer = probe_layer(metrics, language)
    probe = metrics[
        (metrics["metric"] == "probe_rsa")
        & (metrics["subset"] == "all")
        & (metrics["trial_id"] == "base")
        & (metrics["language"] == language)
        & (metrics["layer"] == layer)
    ]
    if len(probe):
        text += (
            f"; a ridge probe on the frozen base model's layer {layer} (least cross-validated error on training "
            f"concepts) reaches {ci_text(probe.iloc[0])}"
        )
    tr = (
        transfer[(transfer["trial_id"] == trial["trial_id"]) & (transfer["language"] == language)]
        if len(transfer)
        else transfer
    )
    if len(tr):
        tr = tr[tr["method"] == "spearman"] if "method" in tr else tr
        rose = int((tr["delta"] > 0).sum())
        p = tr["p_holm"] if "p_holm" in tr else tr["p"]
        sig = int(((tr["delta"] > 0) & (p < 0.05)).sum())
        text += (
            f". Spearman rose on {rose} of {len(tr)} dimensions, significantly (Steiger, Holm-adjusted p < .05) "
            f"on {sig}"
        )
    return text + " (95 % bootstrap CIs)."


def _transfer_group_lines(metrics: pd.DataFrame) -> list[str]:
    """Each trial's mean delta against the base, by group of dimensions, with paired CIs."""
    rows = metrics[metrics["metric"] == "transfer_delta"] if len(metrics) else metrics
    if rows.empty:
        return []
    view = pd.DataFrame(
        {
            "language": rows["language"],
            "trial_id": rows["trial_id"],
            "group": rows["subset"],
            "mean delta Spearman": [f"{r.value:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]" for r in rows.itertuples()],
            "p": rows["p"].map(format_p),
            "concepts": rows["n"],
        }
    )
    return [
        "Transfer by group (what the trial trained on: dimensions, language, format), mean Spearman delta "
        "against the base, paired bootstrap 95 % CI:",
        view.to_string(index=False),
        "",
    ]


def _minus_probe_lines(metrics: pd.DataFrame) -> list[str]:
    """Each trial's prompted ratings minus the frozen base probe, paired on the same concepts."""
    from grid.hidden_states import MINUS_PROBE

    rows = metrics[metrics["metric"].isin(list(MINUS_PROBE))] if len(metrics) else metrics
    if rows.empty:
        return []
    view = pd.DataFrame(
        {
            "language": rows["language"],
            "trial_id": rows["trial_id"],
            "measure": rows["metric"].map(MINUS_PROBE),
            "probe layer": rows["layer"],
            "fine-tuned - probe": [f"{r.value:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]" for r in rows.itertuples()],
            "p": rows["p"].map(format_p),
            "n": rows["n"],
        }
    )
    return [
        "Fine-tuned minus the frozen probe (the base model's ridge read-out at its layer of least cross-validated "
        "error), paired bootstrap on the same held-out concepts, 95 % CI, two-sided p:",
        view.to_string(index=False),
        "",
    ]


def summary_lines(summary: dict) -> list[str]:
    """Base vs fine-tuned per-dimension Spearman and RSA, best trials, where the tables are."""
    from grid.objectives import seed_table

    m, trials = summary["metrics"], summary["trials"]
    lines = _metric_lines(m) if len(m) else []
    sentence = headline(m, summary["transfer"], trials)
    if sentence:
        lines += [sentence, ""]
    lines += _trial_lines(m, trials, summary.get("differences", pd.DataFrame()))
    lines += _minus_probe_lines(m)
    lines += _transfer_group_lines(m)
    seeds = seed_table(m, trials) if len(trials) else pd.DataFrame()
    if len(seeds):
        lines += [
            "Training seeds of each best configuration (held-out figures per seed, their mean and spread; "
            "read the spread beside the bootstrap CIs):",
            seeds.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
            "",
        ]
    lines += _transfer_lines(summary["transfer"])
    lines.append("Tables (Parquet folders; pandas.read_parquet / duckdb read_parquet('<folder>/*.parquet')):")
    # a job without mcq has no choices table
    lines += [f"  {name:<11} {path}" for name, path in summary["tables"].items() if RunLocation(path).exists()]
    return lines


def _table(title: str, text: str) -> list[str]:
    return [title, text, ""]


def _metric_lines(m: pd.DataFrame) -> list[str]:
    """Per-dimension Spearman, rating RSA and the probe by layer, as pivot tables."""
    three = lambda v: f"{v:6.3f}"  # noqa: E731
    lines = []
    sp = m[m["metric"] == "spearman"]
    if len(sp):
        pivot = sp.pivot_table(index=["language", "dimension"], columns="trial_id", values="value", sort=False)
        lines += _table(
            "Per-dimension Spearman on held-out concepts (columns: base and each trial):",
            pivot.to_string(float_format=three),
        )
    rs = m[m["metric"] == "rsa"]
    if len(rs):
        pivot = rs.pivot_table(index=["language", "subset"], columns="trial_id", values="value", sort=False)
        lines += _table(
            "RSA (study recipe: z-scored dimensions, cosine RDM, Spearman):", pivot.to_string(float_format=three)
        )
    pr = m[(m["metric"] == "probe_rsa") & (m["subset"] == "all")]
    if len(pr):
        keys = ["language", "trial_id", "layer"]
        mean_sp = m[m["metric"] == "probe_spearman"].groupby(keys)["value"].mean().rename("mean Spearman")
        view = (
            pr.set_index(keys)[["value", "ci_low", "ci_high"]]
            .rename(columns={"value": "RSA", "ci_low": "RSA low", "ci_high": "RSA high"})
            .join(mean_sp)
        )
        lines += _table(
            "Frozen-feature probe (ridge from each layer's hidden states, fitted on the training concepts):",
            view.to_string(float_format=three),
        )
    return lines


def _trial_lines(m: pd.DataFrame, trials: pd.DataFrame, differences: pd.DataFrame) -> list[str]:
    """The trials, and with several objectives each one's best trial and their paired differences."""
    from grid.objectives import chosen_on, differences_text, objective_table, objective_text, several_objectives

    lines = []
    if len(trials) and "eval_score" in trials:
        wanted = (
            "trial_id",
            "condition",
            "seed",
            "format",
            "eval_score",
            "loss_first",
            "loss_last",
            "steps",
            "seconds",
        )
        cols = [c for c in wanted if c in trials]
        lines += _table("Trials:", trials[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if not several_objectives(trials):
        return lines
    table = objective_text(objective_table(m, trials))
    if len(table):
        lines += _table(
            f"Best trial per objective (chosen on {chosen_on(trials)} concepts) on held-out concepts, "
            "95 % bootstrap CIs:",
            table.to_string(),
        )
    diffs = differences_text(differences)
    if len(diffs):
        lines += _table(
            "Paired differences between objectives (a - b, same held-out concepts / questions resampled "
            "together; * the 95 % CI excludes 0):",
            diffs.to_string(),
        )
    return lines


def _transfer_lines(t: pd.DataFrame) -> list[str]:
    """The transfer table: each trial's per-dimension delta against the base, with Steiger p and Holm's."""
    if not len(t):
        return []
    view = t[["language", "trial_id", "dimension", "base_value", "value", "delta", "p"]].copy()
    view["p_holm"] = t["p_holm"] if "p_holm" in t else np.nan
    view["p"], view["p_holm"] = view["p"].map(format_p), view["p_holm"].map(format_p)
    return _table(
        "Transfer (delta against base; Steiger test, two-sided p, and p_holm adjusted over each trial's "
        "dimensions by Holm's method):",
        view.to_string(index=False, float_format=lambda v: f"{v:.3g}"),
    )

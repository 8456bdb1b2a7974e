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
    from grid.aggregate import probe_layer
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
    text = (f"On {int(tuned['n'])} held-out concepts ({language}), fine-tuning on {trial['condition']} (trial "
            f"{trial['trial_id']}) moved the model's rating RSA with the human norms from {ci_text(base)} (base) to {ci_text(tuned)}")
    layer = probe_layer(metrics, language)
    probe = metrics[(metrics["metric"] == "probe_rsa") & (metrics["subset"] == "all") & (metrics["trial_id"] == "base")
                    & (metrics["language"] == language) & (metrics["layer"] == layer)]
    if len(probe):
        text += (f"; a ridge probe on the frozen base model's layer {layer} (least cross-validated error on training "
                 f"concepts) reaches {ci_text(probe.iloc[0])}")
    tr = transfer[(transfer["trial_id"] == trial["trial_id"]) & (transfer["language"] == language)] if len(transfer) else transfer
    if len(tr):
        tr = tr[tr["method"] == "spearman"] if "method" in tr else tr
        rose = int((tr["delta"] > 0).sum())
        p = tr["p_holm"] if "p_holm" in tr else tr["p"]
        sig = int(((tr["delta"] > 0) & (p < 0.05)).sum())
        text += (f". Spearman rose on {rose} of {len(tr)} dimensions, significantly (Steiger, Holm-adjusted p < .05) "
                 f"on {sig}")
    return text + " (95 % bootstrap CIs)."


def _transfer_group_lines(metrics: pd.DataFrame) -> list[str]:
    """Each trial's mean delta against the base, by group of dimensions, with paired CIs."""
    rows = metrics[metrics["metric"] == "transfer_delta"] if len(metrics) else metrics
    if rows.empty:
        return []
    view = pd.DataFrame({"language": rows["language"], "trial_id": rows["trial_id"], "group": rows["subset"],
                         "mean delta Spearman": [f"{r.value:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
                                                 for r in rows.itertuples()],
                         "p": rows["p"].map(format_p), "concepts": rows["n"]})
    return ["Transfer by group (what the trial trained on: dimensions, language, format), mean Spearman delta "
            "against the base, paired bootstrap 95 % CI:", view.to_string(index=False), ""]


def _minus_probe_lines(metrics: pd.DataFrame) -> list[str]:
    """Each trial's prompted ratings minus the frozen base probe, paired on the same concepts."""
    from grid.aggregate import MINUS_PROBE

    rows = metrics[metrics["metric"].isin(list(MINUS_PROBE))] if len(metrics) else metrics
    if rows.empty:
        return []
    view = pd.DataFrame({"language": rows["language"], "trial_id": rows["trial_id"],
                         "measure": rows["metric"].map(MINUS_PROBE), "probe layer": rows["layer"],
                         "fine-tuned - probe": [f"{r.value:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]" for r in rows.itertuples()],
                         "p": rows["p"].map(format_p), "n": rows["n"]})
    return ["Fine-tuned minus the frozen probe (the base model's ridge read-out at its layer of least cross-validated "
            "error), paired bootstrap on the same held-out concepts, 95 % CI, two-sided p:",
            view.to_string(index=False), ""]


def summary_lines(summary: dict) -> list[str]:
    """Base vs fine-tuned per-dimension Spearman and RSA, best trials, where the tables are."""
    from grid.objectives import (chosen_on, differences_text, objective_table, objective_text, seed_table,
                                 several_objectives)

    lines = []
    m = summary["metrics"]
    if len(m):
        sp = m[m["metric"] == "spearman"]
        if len(sp):
            pivot = sp.pivot_table(index=["language", "dimension"], columns="trial_id", values="value", sort=False)
            lines += ["Per-dimension Spearman on held-out concepts (columns: base and each trial):",
                      pivot.to_string(float_format=lambda v: f"{v:6.3f}"), ""]
        rs = m[m["metric"] == "rsa"]
        if len(rs):
            pivot = rs.pivot_table(index=["language", "subset"], columns="trial_id", values="value", sort=False)
            lines += ["RSA (study recipe: z-scored dimensions, cosine RDM, Spearman):", pivot.to_string(float_format=lambda v: f"{v:6.3f}"), ""]
        pr = m[(m["metric"] == "probe_rsa") & (m["subset"] == "all")]
        if len(pr):
            mean_sp = (m[m["metric"] == "probe_spearman"].groupby(["language", "trial_id", "layer"])["value"].mean()
                       .rename("mean Spearman"))
            view = pr.set_index(["language", "trial_id", "layer"])[["value", "ci_low", "ci_high"]].rename(
                columns={"value": "RSA", "ci_low": "RSA low", "ci_high": "RSA high"}).join(mean_sp)
            lines += ["Frozen-feature probe (ridge from each layer's hidden states, fitted on the training concepts):",
                      view.to_string(float_format=lambda v: f"{v:6.3f}"), ""]
    sentence = headline(m, summary["transfer"], summary["trials"])
    if sentence:
        lines += [sentence, ""]
    trials = summary["trials"]
    if len(trials) and "eval_score" in trials:
        cols = [c for c in ("trial_id", "condition", "seed", "format", "eval_score", "loss_first", "loss_last", "steps", "seconds") if c in trials]
        lines += ["Trials:", trials[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"), ""]
    if several_objectives(trials):
        table = objective_text(objective_table(m, trials))
        if len(table):
            lines += [f"Best trial per objective (chosen on {chosen_on(trials)} concepts) on held-out concepts, 95 % "
                      "bootstrap CIs:",
                      table.to_string(), ""]
        diffs = differences_text(summary.get("differences", pd.DataFrame()))
        if len(diffs):
            lines += ["Paired differences between objectives (a - b, same held-out concepts / questions resampled "
                      "together; * the 95 % CI excludes 0):", diffs.to_string(), ""]
    lines += _minus_probe_lines(m)
    lines += _transfer_group_lines(m)
    seeds = seed_table(m, trials) if len(trials) else pd.DataFrame()
    if len(seeds):
        lines += ["Training seeds of each best configuration (held-out figures per seed, their mean and spread; "
                  "read the spread beside the bootstrap CIs):", seeds.to_string(index=False, float_format=lambda v: f"{v:.3f}"), ""]
    t = summary["transfer"]
    if len(t):
        view = t[["language", "trial_id", "dimension", "base_value", "value", "delta", "p"]].copy()
        view["p_holm"] = t["p_holm"] if "p_holm" in t else np.nan
        view["p"], view["p_holm"] = view["p"].map(format_p), view["p_holm"].map(format_p)
        lines += ["Transfer (delta against base; Steiger test, two-sided p, and p_holm adjusted over each trial's "
                  "dimensions by Holm's method):", view.to_string(index=False, float_format=lambda v: f"{v:.3g}"), ""]
    lines.append("Tables (Parquet folders; pandas.read_parquet / duckdb read_parquet('<folder>/*.parquet')):")
    lines += [f"  {name:<11} {path}" for name, path in summary["tables"].items()
              if RunLocation(path).exists()]  # a job without mcq has no choices table
    return lines

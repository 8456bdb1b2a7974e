"""The report's figures of a search: each trial's validation score against what was
searched, and each objective's best trial on every held-out measure."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pandas as pd

from grid.report.figures import PALETTE, Figure, FigureOptions, figure
from grid.report.results import Results


TRIAL_COLUMNS = (
    "trial_id",
    "condition",
    "format",
    "status",
    "eval_score",
    "loss_first",
    "loss_last",
    "steps",
    "seconds",
)


def trial_table(res: Results) -> pd.DataFrame:
    """Trials with their hyperparameters spread into columns (from the ``config`` JSON)."""
    trials = res.table("trials")
    if trials.empty:
        return trials
    params = pd.DataFrame(
        [
            {k: v for k, v in json.loads(c).items() if k not in ("condition", "model")} if isinstance(c, str) else {}
            for c in trials.get("config", [None] * len(trials))
        ],
        index=trials.index,
    )
    keep = [c for c in TRIAL_COLUMNS if c in trials]
    return pd.concat([trials[keep], params], axis=1).sort_values(["format", "eval_score"], ascending=[True, False])


@figure("search")
def search(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    table = trial_table(res)
    if table.empty:
        missing.append(
            "search: no trials recorded" + (" (evaluate-ratings folders have none)" if res.kind == "evaluation" else "")
        )
        return None
    numeric = [
        c
        for c in table.columns
        if c not in TRIAL_COLUMNS and pd.api.types.is_numeric_dtype(table[c]) and table[c].nunique() > 1
    ]
    params = numeric or ["steps"]
    fig, axes = plt.subplots(1, len(params), figsize=(3.4 * len(params) + 0.6, 3.2), sharey=True, squeeze=False)
    formats = list(dict.fromkeys(table["format"]))
    for ax, param in zip(axes[0], params):
        for i, fmt in enumerate(formats):
            part = table[table["format"] == fmt]
            ax.scatter(part[param], part["eval_score"], color=PALETTE[i % len(PALETTE)], label=fmt, s=28)
            best = part.loc[part["eval_score"].idxmax()] if part["eval_score"].notna().any() else None
            if best is not None:
                ax.scatter(
                    [best[param]],
                    [best["eval_score"]],
                    marker="*",
                    s=160,
                    facecolor="none",
                    edgecolor="black",
                    linewidths=0.9,
                )
                ax.annotate(
                    f"best {best['eval_score']:.3f}",
                    (best[param], best["eval_score"]),
                    textcoords="offset points",
                    xytext=(6, 4),
                    fontsize=7,
                )
        values = table[param].dropna()
        if len(values) and (values > 0).all() and values.max() / values.min() >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(param)
    on = trials_on(res)
    axes[0][0].set_ylabel(f"eval score (mean Spearman, {on} concepts)")
    axes[0][-1].legend(fontsize=7, frameon=False, title="objective", title_fontsize=7)
    fig.tight_layout()
    return Figure(
        "search",
        "The search",
        f"Each trial's score on {on} concepts against its hyperparameters, per "
        "learning objective; the star marks the best trial of each objective.",
        fig,
        table.reset_index(drop=True),
    )


def trials_on(res: Results) -> str:
    """Which concepts the trials were scored on: ``validation`` (set aside from the
    training split) or ``held-out`` (jobs without a validation split)."""
    from grid.objectives import chosen_on

    return chosen_on(res.table("trials"))


@figure("objectives")
def objectives(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    from grid.objectives import OBJECTIVE_MEASURES, objective_table, several_objectives

    trials = res.table("trials")
    if not several_objectives(trials):
        return None  # one objective: the other figures already compare it with the base
    table = objective_table(res.table("metrics"), trials)
    if table.empty:
        missing.append("objectives: no held-out metrics for the best trials yet")
        return None
    measures = [m for m in OBJECTIVE_MEASURES if (table["measure"] == m).any()]
    names = list(dict.fromkeys(table["objective"]))
    ncols = min(4, len(measures))  # wrapped: seven panels in one row are too small to read
    nrows = -(-len(measures) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols + 0.6, 3.1 * nrows), squeeze=False)
    for ax in axes.flat[len(measures) :]:
        ax.set_visible(False)
    for ax, measure in zip(axes.flat, measures):
        part = table[table["measure"] == measure]
        layers = list(dict.fromkeys(part["layer"].dropna())) or [None]
        width = 0.7 / len(layers)
        for j, layer in enumerate(layers):
            rows = part if layer is None else part[part["layer"] == layer]
            x = [names.index(o) + (j - (len(layers) - 1) / 2) * width for o in rows["objective"]]
            err = [
                rows["value"] - rows["ci_low"].fillna(rows["value"]),
                rows["ci_high"].fillna(rows["value"]) - rows["value"],
            ]
            ax.errorbar(
                x,
                rows["value"],
                yerr=err,
                fmt="o",
                ms=4,
                capsize=2,
                color=PALETTE[j % len(PALETTE)],
                label=None if layer is None else f"layer {layer}",
            )
        base = part[(part["objective"] == "base")]
        if layers == [None] and len(base):  # the base's value across the panel: what each objective moved
            ax.axhline(float(base["value"].iloc[0]), color=PALETTE[0], lw=0.6, ls="--", alpha=0.6)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(measure, fontsize=9)
        if len(layers) > 1:
            ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return Figure(
        "objectives",
        "Which objective moves the model closest to humans",
        f"The base model and each learning objective's best trial (chosen on {trials_on(res)} concepts), on "
        "held-out concepts (colour accuracy: the colour test questions), with 95 % bootstrap CIs; hidden-state "
        "and probe RSA per layer.",
        fig,
        table,
    )

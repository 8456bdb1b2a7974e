"""The report's transfer and colour-question figures: each trial's per-dimension change
against the base (marked by its Holm-adjusted Steiger test), and MCQ accuracy with Wilson
intervals."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from embodiment.evaluate import significance_stars
from grid.report.figures import PALETTE, Figure, FigureOptions, _grouped_bars, _labels_of, figure
from grid.report.results import Results


@figure("transfer_matrix")
def transfer_matrix(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    tr = res.shown("transfer")
    if tr.empty:
        missing.append("transfer matrix: no transfer table (needs a base and at least one fine-tuned condition)")
        return None
    tr = tr[tr["method"] == "spearman"] if "method" in tr else tr
    tr = tr.assign(column=tr["eval_set"].astype(str) + " · " + tr["dimension"].astype(str))
    rows = _labels_of(tr)
    cols = list(dict.fromkeys(tr.sort_values(["eval_set"], kind="stable")["column"]))
    delta = tr.pivot_table(index="label", columns="column", values="delta", observed=True).reindex(
        index=rows, columns=cols
    )
    p_column = "p_holm" if "p_holm" in tr and tr["p_holm"].notna().any() else "p"  # tables before Holm: raw p
    pvals = tr.pivot_table(index="label", columns="column", values=p_column, observed=True).reindex(
        index=rows, columns=cols
    )
    lim = float(np.nanmax(np.abs(delta.to_numpy()))) if np.isfinite(delta.to_numpy()).any() else 1.0
    fig, ax = plt.subplots(figsize=(min(18, 2.5 + 0.62 * len(cols)), 2.6 + 0.42 * len(rows)), layout="constrained")
    im = ax.imshow(delta.to_numpy(dtype=float), cmap="RdBu_r", vmin=-lim or -1, vmax=lim or 1, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = delta.iat[i, j]
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:+.2f}{significance_stars(pvals.iat[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="white" if abs(v) > 0.6 * lim else "black",
                )
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("evaluation set · dimension")
    ax.set_ylabel("fine-tuned on (condition)")
    fig.colorbar(im, ax=ax, label="Δ Spearman vs base", fraction=0.03)
    which = "Holm-adjusted " if p_column == "p_holm" else ""
    ax.set_title(f"Δ Spearman against base (Steiger test, {which}p: * <.05, ** <.01, *** <.001)")
    data = tr[
        [
            "label",
            "eval_set",
            "dimension",
            "base_value",
            "value",
            "delta",
            "z",
            "p",
            *(["p_holm"] if "p_holm" in tr else []),
            "n",
        ]
    ]
    return Figure(
        "transfer_matrix",
        "Transfer matrix",
        "Each cell: the change of the per-dimension Spearman correlation of a fine-tuned condition against "
        "the base model on one evaluation set, marked where Steiger's test for dependent correlations "
        "rejects equality (p Holm-adjusted over each condition's dimensions). Cells off the trained language or format show transfer.",
        fig,
        data.sort_values(["label", "eval_set", "dimension"]).reset_index(drop=True),
    )


def _wilson(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion (accuracy over n items)."""
    if n <= 0:
        return float("nan"), float("nan")
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@figure("transfer_groups")
def transfer_groups(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    m = res.shown("metrics")
    groups = m[m["metric"] == "transfer_delta"].copy() if not m.empty else m
    if groups.empty:
        return None  # a job without trained-dimension flags (or without a base) has no groups
    groups = groups.sort_values(["language", "label", "subset"]).reset_index(drop=True)
    rows = [
        f"{label} ({lang}): {subset}"
        for label, lang, subset in zip(groups["label"], groups["language"], groups["subset"])
    ]
    fig, ax = plt.subplots(figsize=(7.0, 0.9 + 0.38 * len(rows)))
    y = np.arange(len(rows))[::-1]
    labels = _labels_of(groups)
    colours = [PALETTE[labels.index(str(lbl)) % len(PALETTE)] for lbl in groups["label"]]
    err = np.vstack([groups["value"] - groups["ci_low"], groups["ci_high"] - groups["value"]])
    for yi, v, e0, e1, c in zip(y, groups["value"], err[0], err[1], colours):
        ax.errorbar(v, yi, xerr=[[e0], [e1]], fmt="o", color=c, capsize=3)
        ax.text(v, yi + 0.18, f"{v:+.3f}", ha="center", va="bottom", fontsize=7)
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_yticks(y, rows, fontsize=7)
    ax.set_xlabel("mean Spearman delta against base (paired bootstrap 95% CI)")
    fig.tight_layout()
    return Figure(
        "transfer_groups",
        "Transfer by what was trained",
        "Each condition's mean per-dimension Spearman change against the untrained model, over the dimensions "
        "it trained on and those it did not, in its own and the other language and format; both models on the "
        "same resamples of concepts. A CI that excludes 0 is a change the held-out concepts resolve.",
        fig,
        groups[["language", "label", "subset", "value", "ci_low", "ci_high", "n"]],
    )


@figure("mcq_accuracy")
def mcq_accuracy(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    m = res.shown("metrics")
    acc = m[m["metric"] == "accuracy"].copy() if not m.empty else m
    if acc.empty:
        formats = (res.provenance.get("job") or {}).get("evaluation", {}).get("formats", [])
        if "mcq" in formats:  # asked for and not there yet; otherwise the figure does not apply
            missing.append("colour multiple-choice accuracy: the job evaluates mcq but no 'accuracy' rows exist yet")
        return None
    # the aggregate's bootstrap CI over questions; Wilson's for accuracy rows that carry none
    bootstrap = "ci_low" in acc and acc["ci_low"].notna().all() and acc["ci_high"].notna().all()
    if not bootstrap:
        bounds = [_wilson(float(v), int(n)) for v, n in zip(acc["value"], acc["n"])]
        acc["ci_low"], acc["ci_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    acc["subset"] = acc["eval_set"]
    labels = _labels_of(acc)
    fig, ax = plt.subplots(figsize=(1.8 + 1.1 * len(labels), 3.2))
    _grouped_bars(ax, acc, "subset", labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"accuracy ({'bootstrap' if bootstrap else 'Wilson'} 95% CI)")
    ax.set_xlabel("multiple-choice set")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return Figure(
        "mcq_accuracy",
        "Colour multiple-choice accuracy",
        "Share of colour questions whose highest-likelihood option is the correct one, by condition; "
        "rating-trained conditions here show whether gains cross task formats.",
        fig,
        acc[["eval_set", "label", "value", "ci_low", "ci_high", "n"]].reset_index(drop=True),
    )


# the geometry, search and objectives figures register themselves after the ones above, in
# the report's order

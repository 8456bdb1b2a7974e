"""From model ratings and human norms to the metrics, RSA, transfer and word-wise tables.

This is the science behind ``egrid evaluate-ratings`` and the grid's aggregate stage:
plain functions of arrays, returning pandas tables in the long layout of docs/architecture.md ("Tables").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from embodiment import dimensions as dims
from embodiment.metrics import mean_correlation, per_dimension, rsa_by_subset, transfer_rows, wordwise_similarity
from embodiment.metrics.rsa import STUDY_RECIPE, RSARecipe, get_recipe
from embodiment.metrics.rsa_shared import SharedDraws
from embodiment.ratings import JoinedRatings

METRIC_COLUMNS = [
    "condition",
    "eval_set",
    "metric",
    "subset",
    "dimension",
    "recipe",
    "standardise",
    "rdm_method",
    "compare_method",
    "layer",
    "value",
    "ci_low",
    "ci_high",
    "p",
    "alternative",
    "n",
    "n_dropped",
    "note",
]


@dataclass
class EvaluationOptions:
    """Choices of one evaluation; defaults follow the study.

    Attributes:
        base: the condition the transfer table compares against (None: no transfer table).
        n_boot: bootstrap resamples for correlation CIs.
        rsa_recipe: RSA recipe name, dict or object.
        rsa_subsets: dimension subsets for RSA.
        rsa_perm: concept permutations for the RSA p-value (0: none).
        rsa_boot: bootstrap resamples for RSA CIs (0: none).
        seed: seed for every resampling.
        eval_set: label of the evaluation set in every row.
        paired: the study's paired-word rule: where conditions are compared, a
            (concept, dimension) rating missing in any condition is dropped from all of
            them, so every condition's correlations, RSA and Steiger tests stand on the same
            concepts (``n`` says how many remain). False: each condition keeps its own
            complete cases.
    """

    base: str | None = "base"
    n_boot: int = 1000
    rsa_recipe: str | dict | RSARecipe = field(default_factory=lambda: STUDY_RECIPE)
    rsa_subsets: Sequence[str] = ("all", "sensory", "motor")
    rsa_perm: int = 0
    rsa_boot: int = 0
    seed: int = 0
    eval_set: str = "ratings"
    paired: bool = True


def paired_ratings(model: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every condition's (n, d) ratings with a cell set to NaN wherever any condition lacks it.

    Per-dimension metrics then drop a concept from every condition of that dimension, and
    RSA (which needs a concept's whole vector) drops it from every condition.
    """
    if len(model) < 2:
        return model
    missing = np.zeros(next(iter(model.values())).shape, dtype=bool)
    for values in model.values():
        missing |= np.isnan(values)
    if not missing.any():
        return model
    return {name: np.where(missing, np.nan, values) for name, values in model.items()}


def evaluate_joined(
    joined: JoinedRatings, options: EvaluationOptions | None = None, progress: Callable[[str], None] | None = None
) -> dict[str, pd.DataFrame]:
    """Compute every table for ratings already aligned with the norms.

    Returns:
        ``metrics`` (per-dimension correlations, their mean over dimensions with a CI,
        RSA, word-wise mean), ``transfer``
        (deltas against the base with Steiger tests), ``wordwise`` (per concept) and
        ``ratings`` (the joined long table).
    """
    opt = options or EvaluationOptions()
    recipe = get_recipe(opt.rsa_recipe)
    say = progress or (lambda _: None)
    metric_rows, wordwise_rows = [], []
    models = paired_ratings(joined.model) if opt.paired else joined.model
    # the conditions' RSAs share each draw's human side (CIs filled in as the context closes)
    with SharedDraws.unless_open() as shared:
        for condition, model in models.items():
            metric_rows += _condition_rows(condition, model, joined, opt, recipe, say, wordwise_rows)
    metrics = shared.resolved(pd.DataFrame(metric_rows).reindex(columns=METRIC_COLUMNS))
    metrics["layer"] = metrics["layer"].astype("Int64")
    for col in ("n", "n_dropped"):
        metrics[col] = metrics[col].astype("Int64")
    transfer = pd.DataFrame()
    if opt.base is not None and opt.base in joined.model and len(joined.model) > 1:
        say("transfer: Steiger tests against the base")
        transfer = pd.DataFrame(
            transfer_rows(models, joined.human, joined.dimensions, base=opt.base, eval_set=opt.eval_set)
        )
    return {
        "metrics": metrics,
        "transfer": transfer,
        "wordwise": pd.concat(wordwise_rows, ignore_index=True),
        "ratings": joined.long.reset_index(drop=True) if joined.long is not None else pd.DataFrame(),
    }


def _condition_rows(condition, model, joined: JoinedRatings, opt, recipe, say, wordwise_rows: list) -> list[dict]:
    """One condition's metric rows: correlations, RSA and word-wise similarity (its
    per-word similarities appended to ``wordwise_rows``)."""
    say(f"{condition}: correlations")
    tag = {"condition": condition, "eval_set": opt.eval_set}
    rows = _correlation_rows(model, joined, opt, tag)
    say(f"{condition}: RSA")
    rows += _rsa_rows(model, joined, opt, recipe, tag)
    sim = wordwise_similarity(model, joined.human)
    wordwise_rows.append(pd.DataFrame({**tag, "word": joined.words, "similarity": sim}))
    ok = ~np.isnan(sim)
    rows.append(
        {
            **tag,
            "metric": "wordwise_similarity",
            "subset": "all",
            "dimension": None,
            "value": float(sim[ok].mean()) if ok.any() else float("nan"),
            "n": int(ok.sum()),
            "n_dropped": int((~ok).sum()),
        }
    )
    return rows


def _correlation_rows(model: np.ndarray, joined: JoinedRatings, opt: EvaluationOptions, tag: dict) -> list[dict]:
    """Per-dimension correlations with CIs, and mean Spearman over dimensions (a constant
    dimension counts 0, noted)."""
    rows = [
        {
            **tag,
            "metric": row.pop("method"),
            "subset": dims.group_of(row["dimension"]) or "custom",
            "alternative": "two-sided",
            **row,
        }
        for row in per_dimension(model, joined.human, joined.dimensions, n_boot=opt.n_boot, seed=opt.seed)
    ]
    mean = mean_correlation(model, joined.human, "spearman", n_boot=opt.n_boot, seed=opt.seed)
    note = f"{mean.n_constant} dimension(s) with constant model ratings counted as 0" if mean.n_constant else None
    rows.append(
        {
            **tag,
            "metric": "mean_spearman",
            "subset": "all",
            "dimension": None,
            "value": mean.r,
            "ci_low": mean.ci_low,
            "ci_high": mean.ci_high,
            "n": mean.n,
            "n_dropped": mean.n_dropped,
            "note": note,
        }
    )
    return rows


def _rsa_rows(model: np.ndarray, joined: JoinedRatings, opt: EvaluationOptions, recipe, tag: dict) -> list[dict]:
    """Rating RSA per dimension subset, with its CI (and a one-sided permutation p where asked for)."""
    rows = []
    for subset, _, result in rsa_by_subset(
        model,
        joined.human,
        joined.dimensions,
        subsets=opt.rsa_subsets,
        recipe=recipe,
        n_perm=opt.rsa_perm,
        n_boot=opt.rsa_boot,
        seed=opt.seed,
    ):
        rows.append(
            {
                **tag,
                "metric": "rsa",
                "subset": subset,
                "dimension": None,
                "recipe": recipe.name,
                "standardise": recipe.standardise,
                "rdm_method": recipe.rdm,
                "compare_method": recipe.compare,
                "value": result.value,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "p": result.p_perm,
                "alternative": "greater" if result.n_perm else None,
                "n": result.n_concepts,
                "n_dropped": result.n_dropped,
            }
        )
    return rows


def format_p(p: float | None) -> str:
    """A p-value as printed: ``< .001`` below .001, else three decimals without the
    leading zero (``.042``); an empty string where there is none."""
    if p is None or not np.isfinite(p):
        return ""
    return "< .001" if p < 0.001 else f"{p:.3f}".lstrip("0")


def significance_stars(p: float | None) -> str:
    """``***`` p < .001, ``**`` p < .01, ``*`` p < .05, else (or no p) an empty string."""
    if p is None or not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def summary_text(tables: dict[str, pd.DataFrame], unmatched: Sequence[str] = ()) -> str:
    """A readable terminal summary of the evaluation tables."""
    m = tables["metrics"]
    lines = []
    sp = m[m["metric"] == "spearman"]
    if not sp.empty:
        pivot = sp.pivot_table(index="dimension", columns="condition", values="value", sort=False)
        lines += ["Per-dimension Spearman (model vs human):", pivot.to_string(float_format=lambda v: f"{v:6.3f}"), ""]
    tr = tables.get("transfer")
    if tr is not None and not tr.empty:
        view = tr[["condition", "dimension", "base_value", "value", "delta", "z", "p", "p_holm", "n"]].copy()
        view["sig"] = view["p_holm"].map(significance_stars)
        view["p"], view["p_holm"] = view["p"].map(format_p), view["p_holm"].map(format_p)
        lines += [
            f"Steiger tests against {tr['base'].iloc[0]!r} (two-sided p; p_holm: Holm-adjusted over each "
            "condition's dimensions, which the stars follow):",
            view.to_string(index=False, float_format=lambda v: f"{v:.3g}"),
            "",
        ]
    rs = m[m["metric"] == "rsa"]
    if not rs.empty:
        recipe = rs["recipe"].iloc[0]
        pivot = rs.pivot_table(index="subset", columns="condition", values="value", sort=False)
        lines += [
            f"RSA ({recipe}: {rs['standardise'].iloc[0]}, {rs['rdm_method'].iloc[0]} RDM, {rs['compare_method'].iloc[0]}):",
            pivot.to_string(float_format=lambda v: f"{v:6.3f}"),
            "",
        ]
    ww = m[m["metric"] == "wordwise_similarity"]
    if not ww.empty:
        lines += [
            "Word-wise similarity 1/(1+euclidean), mean over concepts:",
            ww.set_index("condition")["value"].to_string(float_format=lambda v: f"{v:.3f}"),
            "",
        ]
    if unmatched:
        lines.append(f"{len(unmatched)} words not in the norms (left out), e.g. {', '.join(list(unmatched)[:8])}")
    return "\n".join(lines)

"""Transfer tables: how each condition moves agreement with humans, against the base model.

For every evaluation set and dimension, each condition's correlation with the human
ratings is compared with the base model's on the same concepts by Steiger's z test
(the two correlations share the human variable, so they are dependent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from embodiment.errors import InputError
from embodiment.metrics.correlation import CORRELATIONS
from embodiment.metrics.multiple import holm
from embodiment.metrics.steiger import steiger_z


def transfer_rows(
    ratings: Mapping[str, np.ndarray],
    human: np.ndarray,
    dimensions: Sequence[str],
    *,
    base: str = "base",
    method: str = "spearman",
    eval_set: str = "default",
) -> list[dict]:
    """Delta of each condition's per-dimension correlation against ``base``, with Steiger tests.

    Args:
        ratings: condition -> (n, d) model ratings over the same concepts as ``human``.
        human: (n, d) human ratings.
        dimensions: the d dimension names.
        base: the condition everything is compared with.
        method: ``spearman`` or ``pearson``.
        eval_set: a label for the evaluation set (e.g. ``en/rating``).

    Returns:
        One dict per (condition, dimension): eval_set, condition, base, dimension, method,
        value, base_value, delta, r_between (condition vs base), z, p (two-sided), p_holm
        (Holm-adjusted over the condition's dimensions: one family per condition), n.
    """
    if base not in ratings:
        raise InputError(
            f"no base condition {base!r} among the conditions {sorted(ratings)}; name the baseline with --base",
            key="condition",
        )
    corr = CORRELATIONS[method]
    rows = []
    for condition, values in ratings.items():
        if condition == base:
            continue
        family = []
        for j, dim in enumerate(dimensions):
            x, b, h = values[:, j], ratings[base][:, j], human[:, j]
            keep = ~(np.isnan(x) | np.isnan(b) | np.isnan(h))
            x, b, h = x[keep], b[keep], h[keep]
            n = int(keep.sum())
            if n >= 3:
                r_xh, r_bh, r_xb = corr(np.stack([x, b, x]), np.stack([h, h, b]))
            else:
                r_xh = r_bh = r_xb = float("nan")
            test = steiger_z(r_xh, r_bh, r_xb, n)
            family.append(
                {
                    "eval_set": eval_set,
                    "condition": condition,
                    "base": base,
                    "dimension": dim,
                    "method": method,
                    "value": float(r_xh),
                    "base_value": float(r_bh),
                    "delta": float(r_xh - r_bh),
                    "r_between": float(r_xb),
                    "z": test.z,
                    "p": test.p,
                    "n": n,
                }
            )
        for row, adjusted in zip(family, holm([r["p"] for r in family])):
            row["p_holm"] = float(adjusted)
        rows += family
    return rows

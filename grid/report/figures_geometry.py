"""The report's figures of representational geometry: human, base and fine-tuned RDMs over a
concept subset, and the word-wise similarity of each condition's rating vectors."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from embodiment.metrics.rdm import condensed_rdm, get_standardiser
from embodiment.metrics.wordwise import wordwise_similarity
from grid.report.figures import PALETTE, Figure, FigureOptions, _labels_of, figure
from grid.report.results import Results


def _rating_matrices(res: Results) -> dict[tuple[str, str], pd.DataFrame]:
    """(language, label) -> concepts x dimensions of model ratings, with the human ones as label 'human'."""
    r = res.shown("ratings")
    if r.empty or "expected" not in r:
        return {}
    lang = r["language"] if "language" in r else pd.Series("ratings", index=r.index)
    out: dict[tuple[str, str], pd.DataFrame] = {}
    for language in dict.fromkeys(lang):
        part = r[lang == language]
        for label in _labels_of(part):
            rows = part[part["label"] == label]
            out[(language, label)] = rows.pivot_table(index="concept", columns="dimension", values="expected")
            if (language, "human") not in out:
                out[(language, "human")] = rows.pivot_table(index="concept", columns="dimension", values="human")
    return out


def _rsa_recipe(res: Results) -> tuple[str, str]:
    m = res.table("metrics")
    rs = m[m["metric"] == "rsa"] if not m.empty else m
    if rs.empty:
        return "zscore", "cosine"
    return str(rs.iloc[0]["standardise"]), str(rs.iloc[0]["rdm_method"])


def _pick_concepts(concepts: list[str], opt: FigureOptions) -> list[str]:
    if isinstance(opt.concepts, list):
        wanted = {c.lower(): c for c in opt.concepts}
        return [c for c in concepts if c.lower() in wanted]
    k = min(int(opt.concepts), len(concepts))
    return sorted(np.random.default_rng(opt.seed).choice(concepts, size=k, replace=False).tolist())


@figure("rdm_heatmaps")
def rdm_heatmaps(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    mats = _rating_matrices(res)
    if not mats:
        missing.append("RDM heatmaps: no ratings table")
        return None
    standardise, method = _rsa_recipe(res)
    language = next(iter(dict.fromkeys(k[0] for k in mats)))
    human = mats[(language, "human")]
    models = [k[1] for k in mats if k[0] == language and k[1] != "human"][: opt.max_rdm_panels]
    common = human.dropna().index
    for label in models:
        common = common.intersection(mats[(language, label)].dropna().index)
    chosen = _pick_concepts(list(common), opt)
    if len(chosen) < 3:
        missing.append(
            f"RDM heatmaps: fewer than 3 of the chosen concepts are rated by every condition ({len(chosen)})"
        )
        return None
    panels = {"human": human}
    panels.update({label: mats[(language, label)] for label in models})
    squares, rows = {}, []
    std = get_standardiser(standardise)
    for label, mat in panels.items():
        mat = mat.loc[common]  # standardise over every held-out concept, as the RSA does, then take the subset
        z = pd.DataFrame(std(mat.to_numpy(dtype=float)), index=mat.index).loc[chosen]
        # rounding leaves -1e-16 where a distance is 0; linkage refuses negative distances
        squares[label] = squareform(np.clip(np.nan_to_num(condensed_rdm(z.to_numpy(), method=method)), 0, None))
    order = leaves_list(linkage(squareform(squares["human"], checks=False), method="average"))
    names = [chosen[i] for i in order]
    vmax = max(float(s.max()) for s in squares.values()) or 1.0
    fig, axes = plt.subplots(1, len(squares), figsize=(3.3 * len(squares) + 0.8, 3.8), squeeze=False)
    for ax, (label, sq) in zip(axes[0], squares.items()):
        im = ax.imshow(sq[np.ix_(order, order)], cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(label)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=max(3, 7 - len(names) // 15))
        ax.set_yticks(range(len(names)), names if ax is axes[0][0] else [], fontsize=max(3, 7 - len(names) // 15))
        rows.append(
            pd.DataFrame(sq[np.ix_(order, order)], index=names, columns=names)
            .stack()
            .rename("distance")
            .rename_axis(["concept_a", "concept_b"])
            .reset_index()
            .assign(label=label)
        )
    fig.colorbar(im, ax=axes[0].tolist(), label=f"{method} distance", fraction=0.02)
    fig.suptitle(
        f"RDMs over {len(names)} {language} concepts ({standardise} features, {method} distance; "
        "order: average-linkage clustering of the human RDM)",
        fontsize=8,
    )
    data = pd.concat(rows, ignore_index=True)
    data = data[data["concept_a"] < data["concept_b"]].reset_index(drop=True)
    return Figure(
        "rdm_heatmaps",
        "Human and model RDMs",
        "Representational dissimilarity matrices over a concept subset: the human ratings beside the base and "
        "the best fine-tuned models; the more alike the patterns, the higher the RSA.",
        fig,
        data,
    )


@figure("wordwise_similarity")
def wordwise_distribution(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    ww = res.shown("wordwise")
    if ww.empty:
        rows = []
        mats = _rating_matrices(res)
        for (language, label), mat in mats.items():
            if label == "human":
                continue
            human = mats[(language, "human")].loc[mat.index, mat.columns]
            rows.append(
                pd.DataFrame(
                    {
                        "label": label,
                        "eval_set": language,
                        "word": mat.index,
                        "similarity": wordwise_similarity(mat.to_numpy(float), human.to_numpy(float)),
                    }
                )
            )
        if not rows:
            missing.append("word-wise similarity: no word-wise or ratings table")
            return None
        ww = pd.concat(rows, ignore_index=True)
    ww = ww.dropna(subset=["similarity"])
    if isinstance(ww["label"].dtype, pd.CategoricalDtype):
        labels = _labels_of(ww)
    else:  # computed here from the rating matrices, already in label order
        labels = list(dict.fromkeys(ww["label"].astype(str)))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(labels), 3.4))
    values = [ww.loc[ww["label"].astype(str) == label, "similarity"].to_numpy() for label in labels]
    parts = ax.violinplot(values, showmedians=True)
    for i, body in enumerate(parts["bodies"]):
        body.set_facecolor(PALETTE[i % len(PALETTE)])
    for i, v in enumerate(values, start=1):
        ax.annotate(
            f"mean {v.mean():.3f}", (i, v.max()), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7
        )
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_ylabel("word-wise similarity 1/(1 + euclidean)")
    ax.set_xlabel("condition")
    fig.tight_layout()
    data = (
        ww.groupby(ww["label"].astype(str))
        .agg(n=("similarity", "size"), mean=("similarity", "mean"), median=("similarity", "median"))
        .reindex(labels)
        .reset_index()
    )
    return Figure(
        "wordwise_similarity",
        "Word-wise similarity",
        "Per concept, the similarity of the model's rating vector to the human one, 1/(1 + Euclidean "
        "distance); the violins show its distribution over concepts, the bar the median.",
        fig,
        data,
    )

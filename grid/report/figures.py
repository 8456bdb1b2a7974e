"""The report's figures: one registry, one builder per figure.

A builder takes the normalised :class:`~grid.report.results.Results` and returns a
:class:`Figure` (the matplotlib figure, a caption and the numbers it shows) or ``None``
with the reason in ``missing`` when its tables are absent. Text stays text in the SVGs
(``svg.fonttype = none``) so that labels and values can be searched and tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only: no display on cluster nodes or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from embodiment import dimensions as dims  # noqa: E402
from grid.report.results import Results  # noqa: E402

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "svg.hashsalt": "egrid",
        "figure.dpi": 110,
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)
PALETTE = plt.get_cmap("tab10").colors


@dataclass
class Figure:
    """One built figure.

    Attributes:
        name: file stem (``spearman_by_dimension`` -> .png and .svg).
        title: heading in the report.
        caption: what it shows and how to read it.
        figure: the matplotlib figure.
        data: the numbers drawn, shown under the figure.
    """

    name: str
    title: str
    caption: str
    figure: plt.Figure
    data: pd.DataFrame


@dataclass
class FigureOptions:
    """Choices of the figures.

    Attributes:
        concepts: concepts in the RDM heatmaps: a count drawn with ``seed`` or a list of words.
        seed: seed of the concept draw.
        max_rdm_panels: model RDMs drawn beside the human one.
    """

    concepts: int | list[str] = 30
    seed: int = 0
    max_rdm_panels: int = 3


Builder = Callable[[Results, FigureOptions, list], "Figure | None"]
FIGURES: dict[str, Builder] = {}


def figure(name: str):
    """Register a figure builder under ``name`` (its file stem)."""

    def register(fn: Builder) -> Builder:
        FIGURES[name] = fn
        return fn

    return register


def _labels_of(frame: pd.DataFrame) -> list[str]:
    """The labels present in ``frame``, in the report's label order."""
    present = set(frame["label"])
    return [str(c) for c in frame["label"].cat.categories if c in present]


def _grouped_bars(ax, frame: pd.DataFrame, x: str, labels: list[str]) -> None:
    """Bars of ``value`` per ``x`` and label, CIs as error bars, each bar annotated."""
    xs = list(dict.fromkeys(frame[x]))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        part = frame[frame["label"] == label].set_index(x).reindex(xs)
        pos = np.arange(len(xs)) + (i - (len(labels) - 1) / 2) * width
        values = part["value"].to_numpy(dtype=float)
        err = None
        if {"ci_low", "ci_high"} <= set(part) and part["ci_low"].notna().any():
            lo = np.clip(values - part["ci_low"].to_numpy(dtype=float), 0, None)
            hi = np.clip(part["ci_high"].to_numpy(dtype=float) - values, 0, None)
            err = np.nan_to_num(np.vstack([lo, hi]))
        bars = ax.bar(
            pos,
            np.nan_to_num(values),
            width,
            yerr=err,
            capsize=2,
            label=label,
            color=PALETTE[i % len(PALETTE)],
            error_kw={"elinewidth": 0.8},
        )
        ax.bar_label(bars, labels=[f"{v:.2f}" if np.isfinite(v) else "n/a" for v in values], fontsize=6, padding=1)
    ax.set_xticks(np.arange(len(xs)), xs, rotation=30 if len(xs) > 4 else 0, ha="right" if len(xs) > 4 else "center")
    ax.axhline(0, color="0.3", lw=0.6)
    if len(xs) == 1:
        ax.set_xlim(-1, 1)  # one group: keep the bars bar-shaped


@figure("spearman_by_dimension")
def spearman_by_dimension(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    m = res.shown("metrics")
    if m.empty or not (m["metric"] == "spearman").any():
        missing.append("per-dimension Spearman: no 'spearman' rows in the metrics table")
        return None
    sp = m[(m["metric"] == "spearman") & m["dimension"].notna()].copy()
    sp["group"] = [dims.group_of(d) or "other" for d in sp["dimension"]]
    labels = _labels_of(sp)
    panels = [
        (es, g)
        for es in dict.fromkeys(sp["eval_set"])
        for g in ("sensory", "motor", "other")
        if ((sp["eval_set"] == es) & (sp["group"] == g)).any()
    ]
    widths = [max(2, sp[(sp["eval_set"] == es) & (sp["group"] == g)]["dimension"].nunique()) for es, g in panels]
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(min(16, 1.2 + 0.75 * sum(widths) * max(1, len(labels)) / 2), 3.6),
        sharey=True,
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )
    for ax, (es, g) in zip(axes[0], panels):
        _grouped_bars(ax, sp[(sp["eval_set"] == es) & (sp["group"] == g)], "dimension", labels)
        ax.set_title(f"{es}: {g}")
        ax.set_xlabel("dimension")
    axes[0][0].set_ylabel("Spearman ρ (model vs human)")
    axes[0][-1].legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    data = sp[["eval_set", "group", "dimension", "label", "value", "ci_low", "ci_high", "p", "n"]]
    return Figure(
        "spearman_by_dimension",
        "Per-dimension Spearman by condition",
        "Spearman correlation across held-out concepts between the model's and the human ratings, per "
        "dimension, sensory and motor apart; whiskers are bootstrap 95% CIs over concepts.",
        fig,
        data.sort_values(["eval_set", "group", "dimension", "label"]).reset_index(drop=True),
    )


@figure("rsa_by_subset")
def rsa_by_subset(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    m = res.shown("metrics")
    rs = m[m["metric"] == "rsa"] if not m.empty else m
    if rs.empty:
        missing.append("RSA by subset: no 'rsa' rows in the metrics table")
        return None
    labels = _labels_of(rs)
    sets = list(dict.fromkeys(rs["eval_set"]))
    fig, axes = plt.subplots(
        1,
        len(sets),
        figsize=(min(14, 1.5 + 2.6 * len(sets) * max(1, len(labels)) / 2), 3.4),
        sharey=True,
        squeeze=False,
    )
    for ax, es in zip(axes[0], sets):
        _grouped_bars(ax, rs[rs["eval_set"] == es], "subset", labels)
        ax.set_title(es)
        ax.set_xlabel("dimension subset")
    recipe = rs.iloc[0]
    axes[0][0].set_ylabel(f"RSA ({recipe['compare_method']} of RDMs)")
    axes[0][-1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return Figure(
        "rsa_by_subset",
        "RSA by condition and dimension subset",
        f"Representational similarity of the model's and the human rating geometry (recipe {recipe['recipe']}: "
        f"{recipe['standardise']} features, {recipe['rdm_method']} distance, {recipe['compare_method']} between "
        "RDMs), over all dimensions and the sensory / motor subsets.",
        fig,
        rs[["eval_set", "subset", "label", "value", "ci_low", "ci_high", "p", "n"]]
        .sort_values(["eval_set", "subset", "label"])
        .reset_index(drop=True),
    )


@figure("rsa_by_layer")
def rsa_by_layer(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    m = res.shown("metrics")
    rs = (
        m[m["metric"].isin(["rsa_hidden", "probe_rsa"]) & (m["subset"] == "all") & m["layer"].notna()]
        if not m.empty
        else m
    )
    if rs.empty:
        missing.append("RSA by layer: no hidden-state RSA rows ('rsa_hidden'); evaluate-ratings has no embeddings")
        return None
    rs = rs.assign(language=rs["eval_set"].str.split("/").str[0])
    labels = _labels_of(rs)
    languages = list(dict.fromkeys(rs["language"]))
    fig, axes = plt.subplots(
        1, len(languages), figsize=(min(14, 1.5 + 4.2 * len(languages)), 3.4), sharey=True, squeeze=False
    )
    for ax, lang in zip(axes[0], languages):
        part = rs[rs["language"] == lang]
        values: list[tuple[int, float, str]] = []  # (layer, value, colour) of every hidden-state point
        for i, label in enumerate(labels):
            colour = PALETTE[i % len(PALETTE)]
            raw = part[(part["label"] == label) & (part["metric"] == "rsa_hidden")].sort_values("layer")
            if not raw.empty:
                ax.plot(
                    raw["layer"].astype(int), raw["value"], marker="o", color=colour, label=f"{label}: hidden states"
                )
                values += [(x, y, colour) for x, y in zip(raw["layer"].astype(int), raw["value"])]
            probe = part[(part["label"] == label) & (part["metric"] == "probe_rsa")].sort_values("layer")
            if not probe.empty:
                x = probe["layer"].astype(int)
                ax.plot(x, probe["value"], marker="s", linestyle="--", color=colour, label=f"{label}: ridge probe")
                if probe["ci_low"].notna().all():
                    ax.fill_between(
                        x, probe["ci_low"].astype(float), probe["ci_high"].astype(float), color=colour, alpha=0.12
                    )
        _value_labels(ax, fig, values)
        ax.set_title(f"{lang}: held-out concepts")
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_xticks(sorted(part["layer"].astype(int).unique()))
    axes[0][0].set_ylabel("RSA against the human RDM")
    axes[0][-1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return Figure(
        "rsa_by_layer",
        "RSA by layer: hidden states and the frozen-feature probe",
        "Solid: RSA between the RDM of each layer's concept embeddings (cosine) and the human rating RDM. "
        "Dashed: RSA (study recipe) of a ridge probe's predicted ratings, fitted on the training concepts' "
        "hidden states of that layer (penalty by cross-validation on training concepts only), with its "
        "bootstrap CI: what a linear read-out of the model already recovers.",
        fig,
        rs[["eval_set", "metric", "layer", "label", "value", "ci_low", "ci_high", "n"]]
        .sort_values(["eval_set", "metric", "layer", "label"])
        .reset_index(drop=True),
    )


#: value labels' size (points) and the least vertical distance between two at one x
LABEL_POINTS = 6.0
LABEL_GAP_POINTS = 7.5


def spread(values: list[float], gap: float) -> list[float]:
    """Label heights for ``values`` (labels at one x): as close to the values as they can be
    (least squares) while, in the values' order, any two are at least ``gap`` apart.

    With ``h_i = u_i + i * gap`` over the sorted values the constraint is ``u``
    non-decreasing, so ``u`` is the isotonic regression of ``v_i - i * gap``: pool adjacent
    violators, each pooled block at its mean.

    Returns:
        Heights in the order of ``values``.
    """
    order = sorted(range(len(values)), key=lambda k: values[k])
    blocks: list[list[float]] = []  # [sum, count] of pooled targets
    for i, k in enumerate(order):
        blocks.append([values[k] - i * gap, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out = [0.0] * len(values)
    i = 0
    for total, count in blocks:
        for _ in range(int(count)):
            out[order[i]] = total / count + i * gap
            i += 1
    return out


def _label_heights(ax, fig, points: list[tuple[int, float, str]]) -> tuple[list[float], float, float]:
    """Where each point's label goes under the axes' current y-range: heights, gap, top."""
    lo, hi = ax.get_ylim()
    height = ax.get_position().height * fig.get_size_inches()[1] * 72  # the axes' height in points
    gap = (hi - lo) * LABEL_GAP_POINTS / max(height, 1.0)
    heights = [0.0] * len(points)
    for x in {p[0] for p in points}:
        idx = [k for k, p in enumerate(points) if p[0] == x]
        for k, h in zip(idx, spread([points[k][1] + 0.7 * gap for k in idx], gap)):  # labels sit above their point
            heights[k] = h
    return heights, gap, max(heights) + gap


def _value_labels(ax, fig, points: list[tuple[int, float, str]]) -> None:
    """Each point's value as text beside it, in its line's colour; labels at one x never
    overlap (where curves meet they are spread apart, with a thin leader to the point)."""
    if not points:
        return
    heights, gap, top = _label_heights(ax, fig, points)
    for _ in range(8):  # room for the highest label: a taller range moves the labels too, so settle it
        lo, hi = ax.get_ylim()
        if top <= hi:
            break
        ax.set_ylim(lo, top)
        heights, gap, top = _label_heights(ax, fig, points)
    for (x, y, colour), h in zip(points, heights):
        leader = {"arrowstyle": "-", "color": colour, "lw": 0.4} if abs(h - y - 0.7 * gap) > 0.25 * gap else None
        ax.annotate(
            f"{y:.2f}",
            (x, y),
            xytext=(x, h),
            textcoords="data",
            fontsize=LABEL_POINTS,
            ha="center",
            va="center",
            color=colour,
            arrowprops=leader,
        )


from grid.report import figures_transfer, figures_geometry, figures_probe, figures_search  # noqa: E402,F401,I001


def build_figures(res: Results, opt: FigureOptions | None = None) -> tuple[list[Figure], list[str]]:
    """Every registered figure that the folder's tables allow, and what could not be drawn."""
    opt = opt or FigureOptions()
    built, missing = [], []
    for builder in FIGURES.values():
        fig = builder(res, opt, missing)
        if fig is not None:
            built.append(fig)
    return built, missing
